"""HTTP endpoints of approval gates (`/api/changes`)."""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, get, post
from litestar.params import Parameter

from opsgate.auth.principal import Principal
from opsgate.changes import service
from opsgate.changes.schemas import (
    ChangeApprove,
    ChangeCancel,
    ChangeComplete,
    ChangeDecision,
    ChangeList,
    ChangeReject,
    ChangeRequest,
    ChangeRequestCreate,
    ChangeStats,
    ChangeStatus,
    PendingList,
)
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

ChangeId = Annotated[int, Parameter(ge=1)]


class ChangeController(Controller):
    path = "/api/changes"
    tags = ["changes"]

    @get("/", operation_id="listChanges", opt={"permission": "changes:read"})
    async def list_changes(
        self, conn: Connection, principal: Principal,
        status: Annotated[str | None, Parameter(max_length=200)] = None,
        agent_id: Annotated[int | None, Parameter(ge=1)] = None,
        ticket_id: Annotated[int | None, Parameter(ge=1)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000)] = 0,
    ) -> ChangeList:
        return await service.list_changes(conn, principal, status=status, agent_id=agent_id, ticket_id=ticket_id,
                                          limit=limit, offset=offset)

    @get("/pending", operation_id="listPendingChanges", opt={"permission": "changes:read"})
    async def pending(self, conn: Connection, principal: Principal,
                      limit: Annotated[int, Parameter(ge=1, le=500)] = 200) -> PendingList:
        return await service.list_pending(conn, principal, limit)

    @get("/stats", operation_id="changeStats", opt={"permission": "changes:read"})
    async def stats(self, conn: Connection, principal: Principal) -> ChangeStats:
        return await service.stats(conn, principal)

    @get("/{change_id:int}", operation_id="getChange", opt={"permission": "changes:read"})
    async def get_change(self, change_id: ChangeId, conn: Connection, principal: Principal) -> ChangeRequest:
        return await service.get_change(conn, principal, change_id)

    @get("/{change_id:int}/status", operation_id="getChangeStatus", opt={"permission": "changes:read"})
    async def status(self, change_id: ChangeId, conn: Connection, principal: Principal) -> ChangeStatus:
        return await service.change_status(conn, principal, change_id)

    @post("/request", operation_id="requestChange", opt={"permission": "changes:request"}, status_code=201)
    async def request(self, data: ChangeRequestCreate, conn: Connection, principal: Principal,
                      settings: Settings) -> ChangeRequest:
        return await service.request_change(conn, principal, settings, data)

    @post("/{change_id:int}/approve", operation_id="approveChange", opt={"permission": "changes:approve"},
          status_code=200)
    async def approve(self, change_id: ChangeId, data: ChangeApprove, conn: Connection, principal: Principal,
                      settings: Settings, host: PluginHost) -> ChangeDecision:
        return await service.approve(conn, principal, settings, host, change_id, data)

    @post("/{change_id:int}/reject", operation_id="rejectChange", opt={"permission": "changes:approve"},
          status_code=200)
    async def reject(self, change_id: ChangeId, data: ChangeReject, conn: Connection, principal: Principal,
                     host: PluginHost) -> ChangeDecision:
        return await service.reject(conn, principal, host, change_id, data)

    @post("/{change_id:int}/cancel", operation_id="cancelChange", opt={"permission": "changes:request"},
          status_code=200)
    async def cancel(self, change_id: ChangeId, data: ChangeCancel, conn: Connection, principal: Principal,
                     host: PluginHost) -> ChangeDecision:
        return await service.cancel(conn, principal, host, change_id, data)

    @post("/{change_id:int}/complete", operation_id="completeChange", opt={"permission": "changes:complete"},
          status_code=200)
    async def complete(self, change_id: ChangeId, data: ChangeComplete, conn: Connection,
                       principal: Principal) -> ChangeDecision:
        return await service.complete(conn, principal, change_id, data)


ROUTES = [ChangeController]
