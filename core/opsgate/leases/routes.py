"""HTTP endpoints of leases (contracts/leases.md 2.8)."""

from __future__ import annotations

from typing import Annotated

from asyncpg import Connection
from litestar import Controller, get, post
from litestar.params import Parameter

from opsgate.auth.guard import AUTHENTICATED
from opsgate.auth.principal import Principal
from opsgate.leases import service
from opsgate.leases.schemas import Lease, LeaseList, LeaseRenew, LeaseRevoke, RevokedCount, RevokePrefix
from opsgate.settings import Settings

LeaseId = Annotated[str, Parameter(min_length=1, max_length=64)]
AgentId = Annotated[int, Parameter(ge=1)]


class AgentLeaseController(Controller):
    """An agent's leases. The agent itself may read its own; humans need `leases:read`."""

    path = "/api/agents/{agent_id:int}/leases"
    tags = ["leases"]

    @get("/", operation_id="listAgentLeases", opt={"permission": AUTHENTICATED})
    async def list_leases(self, agent_id: AgentId, conn: Connection, principal: Principal) -> LeaseList:
        return await service.list_agent_leases(conn, principal, agent_id)


class LeaseController(Controller):
    """One lease: read, renew, revoke (the owning agent, or humans with the lease permissions)."""

    path = "/api/leases"
    tags = ["leases"]

    @post("/revoke-prefix", operation_id="revokeLeasesByPrefix", opt={"permission": "leases:admin"},
          status_code=200)
    async def revoke_prefix(self, data: RevokePrefix, conn: Connection, principal: Principal) -> RevokedCount:
        return await service.revoke_prefix(conn, principal, data.scope_prefix, data.agent_id, data.reason)

    @get("/{lease_id:str}", operation_id="getLease", opt={"permission": AUTHENTICATED})
    async def get_lease(self, lease_id: LeaseId, conn: Connection, principal: Principal) -> Lease:
        return await service.get_lease(conn, principal, lease_id)

    @post("/{lease_id:str}/renew", operation_id="renewLease", opt={"permission": AUTHENTICATED}, status_code=200)
    async def renew(self, lease_id: LeaseId, data: LeaseRenew, conn: Connection, principal: Principal,
                    settings: Settings) -> Lease:
        return await service.renew(conn, principal, settings, lease_id, data.increment)

    @post("/{lease_id:str}/revoke", operation_id="revokeLease", opt={"permission": AUTHENTICATED}, status_code=200)
    async def revoke(self, lease_id: LeaseId, data: LeaseRevoke, conn: Connection, principal: Principal) -> Lease:
        return await service.revoke(conn, principal, lease_id, data.reason)


ROUTES = [AgentLeaseController, LeaseController]
