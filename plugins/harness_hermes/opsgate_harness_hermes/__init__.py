"""Hermes Agent harness: runs the `hermes` CLI for agent tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import opsgate.settings
from opsgate import hookimpl
from opsgate_harness_hermes.harness import HermesHarness, HermesSettings

if TYPE_CHECKING:
    from opsgate.settings import Settings

PLUGIN_NAME = "hermes"

__all__ = ["PLUGIN_NAME", "HermesHarness", "HermesSettings", "opsgate_harnesses"]


@hookimpl
def opsgate_harnesses(settings: Settings) -> list[HermesHarness]:
    """The `hermes` harness, configured from `HERMES_*` variables."""
    plugin_settings = opsgate.settings.load(HermesSettings, prefix="HERMES_", environ=settings.env)
    return [HermesHarness(plugin_settings, environ=settings.env)]
