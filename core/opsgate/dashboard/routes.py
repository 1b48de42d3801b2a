"""GET /api/dashboard/stats and GET /api/dashboard/audit."""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, get
from litestar.params import Parameter

from opsgate.auth.principal import Principal
from opsgate.dashboard import service
from opsgate.dashboard.schemas import AuditFeed, DashboardStats


class DashboardController(Controller):
    path = "/api/dashboard"
    tags = ["dashboard"]

    @get("/stats", operation_id="dashboardStats", opt={"permission": "dashboard:read"})
    async def stats(self, conn: Connection, principal: Principal) -> DashboardStats:
        return await service.overview(conn, principal)

    @get("/audit", operation_id="dashboardAudit", opt={"permission": "audit:read"})
    async def audit(
        self, conn: Connection, principal: Principal,
        actor: str | None = None,
        action: str | None = None,
        source: str | None = None,
        category: str | None = None,
        level: str | None = None,
        target: str | None = None,
        q: str | None = None,
        ticket_id: Annotated[int | None, Parameter(ge=1)] = None,
        agent_id: Annotated[int | None, Parameter(ge=1)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
    ) -> AuditFeed:
        filters = service.feed_filters(actor=actor, action=action, source=source, category=category, level=level,
                                       target=target, q=q, ticket_id=ticket_id, agent_id=agent_id)
        return await service.audit_feed(conn, principal, filters, limit)


ROUTES = [DashboardController]
