"""Wazuh tool adapter: manager and indexer queries behind scoped credential leases.

Hook implementations only. `opsgate_tool_adapters` returns one
`WazuhAdapter` built from `WAZUH_*` / `WAZUH_INDEXER_*` in the core
settings' environment; it does no I/O and works with nothing configured.
`opsgate_routes` adds the three lease-checked routes of `routes.py`
(`/api/agents/{agent_id}/wazuh/...`), which find the adapter by name
(`wazuh`) through the plugin host at request time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsgate import hookimpl
from opsgate_tool_wazuh.adapter import SCOPE_ALERTS_READ, SCOPE_MANAGER_READ, WazuhAdapter
from opsgate_tool_wazuh.routes import route_handlers

if TYPE_CHECKING:
    from opsgate.settings import Settings

__all__ = ["PLUGIN_NAME", "SCOPE_ALERTS_READ", "SCOPE_MANAGER_READ", "WazuhAdapter", "opsgate_routes",
           "opsgate_tool_adapters"]

PLUGIN_NAME = "wazuh"


@hookimpl
def opsgate_tool_adapters(settings: Settings) -> list[WazuhAdapter]:
    """The Wazuh adapter, configured from `settings.env`."""
    return [WazuhAdapter.from_env(settings.env)]


@hookimpl
def opsgate_routes() -> list[Any]:
    """`GET /api/agents/{agent_id}/wazuh/manager/status`, `.../rules/{rule_id}`, `.../alerts/search`."""
    return route_handlers()
