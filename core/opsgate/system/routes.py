"""GET /health and GET /api/plugins."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.datastructures import State

from opsgate.plugins import PluginHost
from opsgate.system import service
from opsgate.system.schemas import Health, PluginList


@get("/health", operation_id="health", tags=["system"], opt={"public": True})
async def health(state: State) -> Response[Health]:
    result = await service.health(state.pool)
    return Response(result, status_code=200 if result.database == "ok" else 503)


class PluginController(Controller):
    path = "/api/plugins"
    tags = ["system"]

    @get("/", operation_id="listPlugins", opt={"permission": "plugins:read"})
    async def list_plugins(self, host: PluginHost) -> PluginList:
        return PluginList(plugins=host.list())
