"""SQL of leases: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql
from opsgate.errors import Conflict

_Q = sql.load(__package__)
INSERT_LEASE = _Q["insert_lease"]
ACTIVATE_LEASE = _Q["activate_lease"]
DENY_LEASE = _Q["deny_lease"]
SUPERSEDE_ACTIVE = _Q["supersede_active"]
GET_LEASE = _Q["get_lease"]
LIST_AGENT_LEASES = _Q["list_agent_leases"]
USABLE_LEASES = _Q["usable_leases"]
RECENT_LEASES = _Q["recent_leases"]
COUNT_ACTIVE = _Q["count_active"]
RENEW_LEASE = _Q["renew_lease"]
REVOKE_LEASE = _Q["revoke_lease"]
REVOKE_PREFIX = _Q["revoke_prefix"]
REVOKE_AGENT_LEASES = _Q["revoke_agent_leases"]
REVOKE_TICKET_LEASES = _Q["revoke_ticket_leases"]
REVOKE_ENDED_AGENT_LEASES = _Q["revoke_ended_agent_leases"]
REVOKE_CLOSED_TICKET_LEASES = _Q["revoke_closed_ticket_leases"]
EXPIRE_DUE_LEASES = _Q["expire_due_leases"]

Row = dict[str, Any]


def _one(row: asyncpg.Record | None) -> Row | None:
    return None if row is None else dict(row)


async def insert_lease(conn: Connection, *args: Any) -> Row:
    try:
        return dict(await conn.fetchrow(INSERT_LEASE, *args))
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("a lease for this agent and scope is already pending approval") from exc


async def activate_lease(conn: Connection, lease_id: str, credential_ref: str, ttl: int, max_ttl: int,
                         source: dict[str, Any]) -> Row | None:
    return _one(await conn.fetchrow(ACTIVATE_LEASE, lease_id, credential_ref, ttl, max_ttl, source))


async def deny_lease(conn: Connection, lease_id: str, actor: str, reason: str) -> Row | None:
    return _one(await conn.fetchrow(DENY_LEASE, lease_id, actor, reason))


async def supersede_active(conn: Connection, agent_id: int, scope: str, actor: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(SUPERSEDE_ACTIVE, agent_id, scope, actor)]


async def get_lease(conn: Connection, lease_id: str) -> Row | None:
    return _one(await conn.fetchrow(GET_LEASE, lease_id))


async def list_agent_leases(conn: Connection, agent_id: int, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_AGENT_LEASES, agent_id, limit)]


async def usable_leases(conn: Connection, agent_id: int, system: str, resource_type: str,
                        action: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(USABLE_LEASES, agent_id, system, resource_type, action)]


async def recent_leases(conn: Connection, agent_id: int, system: str, resource_type: str,
                        action: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(RECENT_LEASES, agent_id, system, resource_type, action)]


async def count_active(conn: Connection, agent_id: int) -> int:
    return await conn.fetchval(COUNT_ACTIVE, agent_id)


async def renew_lease(conn: Connection, lease_id: str, increment: int) -> Row | None:
    return _one(await conn.fetchrow(RENEW_LEASE, lease_id, increment))


async def revoke_lease(conn: Connection, lease_id: str, actor: str, reason: str) -> Row | None:
    return _one(await conn.fetchrow(REVOKE_LEASE, lease_id, actor, reason))


async def revoke_prefix(conn: Connection, prefix: str, agent_id: int | None, actor: str, reason: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(REVOKE_PREFIX, prefix, agent_id, actor, reason)]


async def revoke_agent_leases(conn: Connection, agent_id: int, actor: str, reason: str,
                              include_pending: bool) -> list[Row]:
    return [dict(r) for r in await conn.fetch(REVOKE_AGENT_LEASES, agent_id, actor, reason, include_pending)]


async def revoke_ended_agent_leases(conn: Connection, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(REVOKE_ENDED_AGENT_LEASES, limit)]


async def revoke_ticket_leases(conn: Connection, ticket_id: int, actor: str, reason: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(REVOKE_TICKET_LEASES, ticket_id, actor, reason)]


async def revoke_closed_ticket_leases(conn: Connection, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(REVOKE_CLOSED_TICKET_LEASES, limit)]


async def expire_due_leases(conn: Connection, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(EXPIRE_DUE_LEASES, limit)]
