"""SQL access for principals, tokens, sessions and decisions. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql
from opsgate.errors import Conflict, NotFound

Q = sql.load(__package__)


async def service_principal(conn: Connection, token_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow(Q["service_principal"], token_hash)


async def touch_service_token(conn: Connection, token_id: int) -> None:
    await conn.execute(Q["touch_service_token"], token_id)


async def agent_principal(conn: Connection, token_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow(Q["agent_principal"], token_hash)


async def insert_agent_token(conn: Connection, agent_id: int, ticket_id: int | None, task_id: int | None,
                             token_hash: str, ttl_seconds: float) -> int:
    return await conn.fetchval(Q["insert_agent_token"], agent_id, ticket_id, task_id, token_hash, ttl_seconds)


async def revoke_agent_tokens(conn: Connection, agent_id: int, reason: str) -> int:
    status = await conn.execute(Q["revoke_agent_tokens"], agent_id, reason)
    return int(status.split()[-1])


async def notify_auth_change(conn: Connection, what: str) -> None:
    """NOTIFY `opsgate_auth` (sent at commit when inside a transaction)."""
    await conn.execute(Q["notify_auth_change"], what)


async def user_principal(conn: Connection, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(Q["user_principal"], user_id)


async def session_user(conn: Connection, token_hash: str) -> int | None:
    return await conn.fetchval(Q["session_user"], token_hash)


async def insert_session(conn: Connection, user_id: int, token_hash: str, ttl: float, ip: str | None,
                         user_agent: str | None) -> asyncpg.Record:
    return await conn.fetchrow(Q["insert_session"], user_id, token_hash, ttl, ip, user_agent)


async def revoke_session(conn: Connection, token_hash: str) -> int | None:
    return await conn.fetchval(Q["revoke_session"], token_hash)


async def user_for_login(conn: Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(Q["user_for_login"], username)


async def login_failed(conn: Connection, user_id: int, max_failures: int, lockout_seconds: float) -> asyncpg.Record:
    return await conn.fetchrow(Q["login_failed"], user_id, max_failures, lockout_seconds)


async def login_succeeded(conn: Connection, user_id: int, new_hash: str | None) -> None:
    await conn.execute(Q["login_succeeded"], user_id, new_hash)


async def user_id_by_username(conn: Connection, username: str) -> int | None:
    return await conn.fetchval(Q["user_by_username"], username)


async def insert_user(conn: Connection, *, username: str, display_name: str | None, email: str | None,
                      password_hash: str | None, source: str, max_classification: str | None) -> int:
    try:
        return await conn.fetchval(Q["insert_user"], username, display_name, email, password_hash, source,
                                   max_classification)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"user {username!r} already exists") from exc


async def upsert_proxy_user(conn: Connection, username: str, email: str | None) -> asyncpg.Record:
    return await conn.fetchrow(Q["insert_proxy_user"], username, email)


async def list_users(conn: Connection, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(Q["list_users"], limit, offset)


async def get_user(conn: Connection, user_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(Q["get_user"], user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return row


async def set_roles(conn: Connection, user_id: int, roles: list[str], granted_by: str) -> None:
    await conn.execute(Q["revoke_roles"], user_id)
    for role in roles:
        try:
            await conn.execute(Q["grant_role"], user_id, role, granted_by)
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFound(f"role {role!r} not found") from exc


async def set_scopes(conn: Connection, user_id: int, groups: list[str], granted_by: str) -> None:
    await conn.execute(Q["revoke_scopes"], user_id)
    for group in groups:
        await conn.execute(Q["grant_scope"], user_id, group, granted_by)


async def set_user_classification(conn: Connection, user_id: int, value: str | None) -> None:
    await conn.execute(Q["set_user_classification"], user_id, value)


async def list_roles(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(Q["list_roles"])


async def role_exists(conn: Connection, role: str) -> bool:
    return await conn.fetchval(Q["get_role"], role) is not None


async def insert_service_token(conn: Connection, *, name: str, role: str, token_hash: str, prefix: str,
                               max_classification: str | None, groups: list[str] | None,
                               created_by: str) -> asyncpg.Record:
    try:
        return await conn.fetchrow(Q["insert_service_token"], name, role, token_hash, prefix,
                                   max_classification, groups, created_by)
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"an active token named {name!r} already exists") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"role {role!r} not found") from exc


async def list_service_tokens(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(Q["list_service_tokens"])


async def revoke_service_token(conn: Connection, token_id: int, revoked_by: str) -> asyncpg.Record | None:
    return await conn.fetchrow(Q["revoke_service_token"], token_id, revoked_by)


async def service_token_state(conn: Connection, token_id: int) -> tuple[bool, Any]:
    row = await conn.fetchrow(Q["service_token_exists"], token_id)
    return (row is not None, row["revoked_at"] if row else None)


async def count_principals(conn: Connection) -> int:
    return await conn.fetchval(Q["count_principals"])


async def insert_decision(conn: Connection, *, principal_kind: str | None, principal: str | None, method: str,
                          route: str, permission: str | None, allowed: bool, reason: str) -> None:
    await conn.execute(Q["insert_decision"], principal_kind, principal, method, route, permission, allowed, reason)
