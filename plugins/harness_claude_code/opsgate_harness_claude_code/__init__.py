"""Claude Code harness: runs the `claude` CLI for agent tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import opsgate.settings
from opsgate import hookimpl
from opsgate_harness_claude_code.harness import ClaudeCodeHarness, ClaudeCodeSettings

if TYPE_CHECKING:
    from opsgate.settings import Settings

PLUGIN_NAME = "claude-code"

__all__ = ["PLUGIN_NAME", "ClaudeCodeHarness", "ClaudeCodeSettings", "opsgate_harnesses"]


@hookimpl
def opsgate_harnesses(settings: Settings) -> list[ClaudeCodeHarness]:
    """The `claude-code` harness, configured from `CLAUDE_CODE_*` variables."""
    plugin_settings = opsgate.settings.load(ClaudeCodeSettings, prefix="CLAUDE_CODE_", environ=settings.env)
    return [ClaudeCodeHarness(plugin_settings, environ=settings.env)]
