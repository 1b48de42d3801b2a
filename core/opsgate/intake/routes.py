"""HTTP endpoints of service-desk intake and RACI administration.

Permissions: reading the RACI set, classifying, clarifying and listing
sessions need ``intake:read``; submitting needs ``intake:submit``; changing
groups and rules needs ``intake:admin`` (held by soc-manager through
``intake:*`` and by platform-admin through ``*``).
"""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, delete, get, post, put
from litestar.params import Parameter

from opsgate.auth.principal import Principal
from opsgate.intake import service
from opsgate.intake.schemas import (
    Clarification,
    ClarifyRequest,
    Classification,
    ClassifyRequest,
    GroupCreate,
    GroupUpdate,
    RaciConfig,
    RaciGroup,
    RaciRule,
    RuleCreate,
    RuleUpdate,
    SessionList,
    SubmitRequest,
    SubmitResult,
)
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

RowId = Annotated[int, Parameter(ge=1)]
IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", required=False)]
READ = {"permission": "intake:read"}
SUBMIT = {"permission": "intake:submit"}
ADMIN = {"permission": "intake:admin"}


class RaciController(Controller):
    path = "/api/intake/raci"
    tags = ["intake"]

    @get("/", operation_id="getRaci", opt=READ)
    async def get_raci(self, conn: Connection) -> RaciConfig:
        """Every RACI group and rule, enabled or not."""
        return await service.raci(conn)

    @post("/groups", operation_id="createRaciGroup", opt=ADMIN, status_code=201)
    async def create_group(self, data: GroupCreate, conn: Connection, principal: Principal) -> RaciGroup:
        """Create a RACI group."""
        return await service.create_group(conn, principal, data)

    @put("/groups/{group_id:int}", operation_id="updateRaciGroup", opt=ADMIN)
    async def update_group(self, group_id: RowId, data: GroupUpdate, conn: Connection,
                           principal: Principal) -> RaciGroup:
        """Change the given fields of a group."""
        return await service.update_group(conn, principal, group_id, data)

    @delete("/groups/{group_id:int}", operation_id="disableRaciGroup", opt=ADMIN, status_code=200)
    async def delete_group(self, group_id: RowId, conn: Connection, principal: Principal) -> RaciGroup:
        """Disable a group (it is kept; 409 while enabled rules route to it)."""
        return await service.delete_group(conn, principal, group_id)

    @post("/rules", operation_id="createRaciRule", opt=ADMIN, status_code=201)
    async def create_rule(self, data: RuleCreate, conn: Connection, principal: Principal) -> RaciRule:
        """Create a routing rule."""
        return await service.create_rule(conn, principal, data)

    @put("/rules/{rule_id:int}", operation_id="updateRaciRule", opt=ADMIN)
    async def update_rule(self, rule_id: RowId, data: RuleUpdate, conn: Connection,
                          principal: Principal) -> RaciRule:
        """Change the given fields of a rule."""
        return await service.update_rule(conn, principal, rule_id, data)

    @delete("/rules/{rule_id:int}", operation_id="disableRaciRule", opt=ADMIN, status_code=200)
    async def delete_rule(self, rule_id: RowId, conn: Connection, principal: Principal) -> RaciRule:
        """Disable a rule (it is kept for the history it routed)."""
        return await service.delete_rule(conn, principal, rule_id)


class IntakeController(Controller):
    path = "/api/intake"
    tags = ["intake"]

    @post("/classify", operation_id="classifyIntake", opt=READ, status_code=200)
    async def classify(self, data: ClassifyRequest, conn: Connection, principal: Principal, settings: Settings,
                       host: PluginHost) -> Classification:
        """Where a request would be routed, and why; writes nothing."""
        return await service.classify(conn, principal, settings, host, data)

    @post("/clarify", operation_id="clarifyIntake", opt=READ, status_code=200)
    async def clarify(self, data: ClarifyRequest, conn: Connection, settings: Settings) -> Clarification:
        """Up to four questions when the routing is unsure or facts are missing."""
        return await service.clarify(conn, settings, data)

    @post("/submit", operation_id="submitIntake", opt=SUBMIT, status_code=201)
    async def submit(self, data: SubmitRequest, conn: Connection, principal: Principal, settings: Settings,
                     host: PluginHost, idempotency_key: IdempotencyKey = None) -> SubmitResult:
        """Route a request, create its ticket, note, attachments, gate and session; then auto-assign."""
        return await service.submit(conn, principal, settings, host, data, idempotency_key)

    @get("/sessions", operation_id="listIntakeSessions", opt=READ)
    async def sessions(
        self, conn: Connection, principal: Principal,
        ticket_id: Annotated[int | None, Parameter(ge=1)] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        offset: Annotated[int, Parameter(ge=0, le=10_000_000)] = 0,
    ) -> SessionList:
        """Intake sessions in the caller's ticket scope, newest first."""
        return await service.list_sessions(conn, principal, ticket_id=ticket_id, limit=limit, offset=offset)


ROUTES = [RaciController, IntakeController]
