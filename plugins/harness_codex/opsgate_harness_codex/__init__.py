"""Codex CLI harness: runs the `codex` CLI for agent tasks.

The hook implementations land with this plugin's issue; until then it is
discovered and listed but contributes nothing.
"""

from opsgate import hookimpl  # noqa: F401

PLUGIN_NAME = "codex"
