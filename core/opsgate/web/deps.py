"""Litestar dependencies shared by every controller."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import asyncpg
from litestar import Request
from litestar.datastructures import State

from opsgate.auth.principal import Principal
from opsgate.errors import Unauthorized, Unavailable
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

DB_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
           asyncpg.CannotConnectNowError, TimeoutError)


async def provide_conn(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """A pooled connection for the duration of one request."""
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
