"""HTTP endpoints of ticket providers and provider sync."""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from opsgate.auth.principal import Principal
from opsgate.plugins import PluginHost
from opsgate.providers import service
from opsgate.providers.schemas import (
    ProviderChoice,
    ProviderList,
    PushResult,
    SyncAllResult,
    SyncTicketRequest,
    TicketSyncResult,
)
from opsgate.settings import Settings

TicketId = Annotated[int, Parameter(ge=1)]
ProviderName = Annotated[str, Parameter(max_length=64)]


class ProviderController(Controller):
    path = "/api/providers"
    tags = ["providers"]

    @get("/", operation_id="listProviders", opt={"permission": "tickets:read"})
    async def list_providers(self, host: PluginHost) -> ProviderList:
        return service.list_providers(host)

    @post("/{provider:str}/sync-all", operation_id="syncProvider", opt={"permission": "tickets:sync"},
          status_code=200)
    async def sync_all(self, provider: ProviderName, state: State, settings: Settings,
                       host: PluginHost) -> SyncAllResult:
        return await service.sync_all(state.pool, settings, host, provider, path=True,
                                      running=getattr(state, "provider_sync", None))

    @post("/{provider:str}/sync-ticket", operation_id="syncProviderTicket", opt={"permission": "tickets:sync"},
          status_code=200)
    async def sync_ticket(self, provider: ProviderName, data: SyncTicketRequest, state: State, conn: Connection,
                          principal: Principal, settings: Settings, host: PluginHost) -> TicketSyncResult:
        return await service.sync_remote_ticket(state.pool, conn, principal, settings, host, provider, data)


class TicketSyncController(Controller):
    path = "/api/tickets"
    tags = ["tickets", "providers"]

    @post("/sync-all", operation_id="syncAllTickets", opt={"permission": "tickets:sync"}, status_code=200)
    async def sync_all(self, request: Request, state: State, settings: Settings, host: PluginHost) -> SyncAllResult:
        requested = service.provider_from_body(await request.body())
        return await service.sync_all(state.pool, settings, host, requested,
                                      running=getattr(state, "provider_sync", None))

    @post("/{ticket_id:int}/sync", operation_id="syncTicket", opt={"permission": "tickets:sync"}, status_code=200)
    async def sync_ticket(self, ticket_id: TicketId, state: State, conn: Connection, principal: Principal,
                          settings: Settings, host: PluginHost) -> TicketSyncResult:
        return await service.sync_ticket(state.pool, conn, principal, settings, host, ticket_id,
                                         running=getattr(state, "provider_sync", None))

    @post("/{ticket_id:int}/push-provider", operation_id="pushTicketToProvider",
          opt={"permission": "tickets:sync"}, status_code=200)
    async def push(self, ticket_id: TicketId, state: State, conn: Connection, principal: Principal,
                   settings: Settings, host: PluginHost, data: ProviderChoice | None = None) -> PushResult:
        requested = data.provider if data is not None else None
        return await service.push_ticket(state.pool, conn, principal, settings, host, ticket_id, requested,
                                         running=getattr(state, "provider_sync", None))


ROUTES = [ProviderController, TicketSyncController]
