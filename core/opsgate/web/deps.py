"""Litestar dependencies shared by every controller."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg
from litestar import Request
from litestar.datastructures import State
from litestar.types import Scope

from opsgate.auth.principal import Principal
from opsgate.errors import Unauthorized, Unavailable
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

DB_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
           asyncpg.CannotConnectNowError, TimeoutError)


GUARD_CONN = "opsgate_guard_conn"  # key in scope["state"]: the guard's connection, handed on to `conn`


def stash_conn(scope: Scope, conn: asyncpg.Connection) -> bool:
    """Hand the guard's connection on to this request's `conn` dependency; False when it cannot be."""
    holder = scope.get("state")
    if not isinstance(holder, dict) or GUARD_CONN in holder:
        return False
    holder[GUARD_CONN] = conn
    return True


async def release_stashed_conn(scope: Scope) -> None:
    """At the end of a request: release a handed-on connection no dependency took (an early error)."""
    holder = scope.get("state")
    conn = holder.pop(GUARD_CONN, None) if isinstance(holder, dict) else None
    if conn is not None:
        await scope["app"].state.pool.release(conn)


async def provide_conn(state: State, scope: Scope) -> AsyncGenerator[asyncpg.Connection, None]:
    """A pooled connection for the duration of one request (the guard's, when it checked one out)."""
    holder = scope.get("state")
    conn = holder.pop(GUARD_CONN, None) if isinstance(holder, dict) else None
    if conn is None:
        try:
            conn = await state.pool.acquire(timeout=10)
        except DB_DOWN as exc:
            raise Unavailable("database unavailable") from exc
    try:
        yield conn
    finally:
        await state.pool.release(conn)


async def provide_principal(request: Request) -> Principal:
    """The authenticated caller (the guard has already required one)."""
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized()
    return principal


def provide_settings(state: State) -> Settings:
    return state.settings


def provide_host(state: State) -> PluginHost:
    return state.plugins


DEPENDENCIES = {
    "conn": provide_conn,
    "principal": provide_principal,
    "settings": provide_settings,
    "host": provide_host,
}
