"""HTTP endpoints of access requests (`/api/tickets/{id}/access-request(s)`)."""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, get, post
from litestar.params import Parameter

from opsgate.access import service
from opsgate.access.schemas import AccessRequestCreate, AccessRequestCreated, AccessRequestList
from opsgate.auth.principal import Principal
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

TicketId = Annotated[int, Parameter(ge=1)]


class AccessRequestController(Controller):
    path = "/api/tickets/{ticket_id:int}"
    tags = ["access"]

    @get("/access-requests", operation_id="listTicketAccessRequests", opt={"permission": "tickets:read"})
    async def list_requests(self, ticket_id: TicketId, conn: Connection, principal: Principal) -> AccessRequestList:
        return await service.list_access_requests(conn, principal, ticket_id)

    @post("/access-request", operation_id="createTicketAccessRequest", opt={"permission": "access:request"},
          status_code=201)
    async def create_request(self, ticket_id: TicketId, data: AccessRequestCreate, conn: Connection,
                             principal: Principal, settings: Settings, host: PluginHost) -> AccessRequestCreated:
        return await service.create_access_request(conn, principal, settings, host, ticket_id, data)


ROUTES = [AccessRequestController]
