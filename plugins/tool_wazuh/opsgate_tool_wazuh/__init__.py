"""Wazuh tool adapter: manager and indexer queries behind scoped credential leases.

Hook implementations only. `opsgate_tool_adapters` returns one
`WazuhAdapter` built from `WAZUH_*` / `WAZUH_INDEXER_*` in the core
settings' environment; it does no I/O and works with nothing configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsgate import hookimpl
from opsgate_tool_wazuh.adapter import SCOPE_ALERTS_READ, SCOPE_MANAGER_READ, WazuhAdapter

if TYPE_CHECKING:
    from opsgate.settings import Settings

__all__ = ["PLUGIN_NAME", "SCOPE_ALERTS_READ", "SCOPE_MANAGER_READ", "WazuhAdapter", "opsgate_tool_adapters"]

PLUGIN_NAME = "wazuh"


@hookimpl
def opsgate_tool_adapters(settings: Settings) -> list[WazuhAdapter]:
    """The Wazuh adapter, configured from `settings.env`."""
    return [WazuhAdapter.from_env(settings.env)]
