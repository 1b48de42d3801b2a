"""Codex CLI harness: runs the `codex` CLI for agent tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import opsgate.settings
from opsgate import hookimpl
from opsgate_harness_codex.harness import CodexHarness, CodexSettings

if TYPE_CHECKING:
    from opsgate.settings import Settings

PLUGIN_NAME = "codex"

__all__ = ["PLUGIN_NAME", "CodexHarness", "CodexSettings", "opsgate_harnesses"]


@hookimpl
def opsgate_harnesses(settings: Settings) -> list[CodexHarness]:
    """The `codex` harness, configured from `CODEX_*` variables."""
    plugin_settings = opsgate.settings.load(CodexSettings, prefix="CODEX_", environ=settings.env)
    return [CodexHarness(plugin_settings, environ=settings.env)]
