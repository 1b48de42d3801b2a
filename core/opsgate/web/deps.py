"""Litestar dependencies shared by every controller, and the pool admission of requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import asyncpg
from litestar.types import Scope

from opsgate.auth.principal import Principal
from opsgate.errors import Unauthorized, Unavailable
from opsgate.plugins import PluginHost
from opsgate.settings import Settings

DB_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
           asyncpg.CannotConnectNowError, TimeoutError)


ACQUIRE_TIMEOUT = 10.0  # seconds a request waits for a connection before it is a 503
RESERVED_FOR_BACKGROUND = 2  # pool connections requests leave to the listener, sweepers and loops


class RequestConnections:
    """Pool connections for HTTP requests, handed out first come, first served.

    asyncpg's pool wakes waiters through an `asyncio.Queue`, where a request
    that arrives just as a connection is released can take it from the waiter
    that was woken for it, which then queues again at the back: under load a
    few requests wait many times longer than the rest (p99 well above twice
    the median in bench/tickets.py). Requests pass a FIFO semaphore of
    (pool size - 2) first, so each connection goes to the longest-waiting
    request and the background loops always find one free.
    """

    def __init__(self, pool: asyncpg.Pool, slots: int) -> None:
        self.pool = pool
        self._slots = asyncio.Semaphore(max(1, slots))

    @classmethod
    def for_pool(cls, pool: asyncpg.Pool, pool_size: int) -> RequestConnections:
        return cls(pool, pool_size - RESERVED_FOR_BACKGROUND)

    async def acquire(self, timeout: float = ACQUIRE_TIMEOUT) -> asyncpg.Connection:
        """A connection, or TimeoutError after `timeout` seconds in all."""
        async with asyncio.timeout(timeout):
            await self._slots.acquire()
            try:
                return await self.pool.acquire()
            except BaseException:
                self._slots.release()
                raise

    async def release(self, conn: asyncpg.Connection) -> None:
        try:
            await self.pool.release(conn)
        finally:
            self._slots.release()


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
        await scope["app"].state.connections.release(conn)


# The providers read the raw ASGI scope: asking Litestar for `state` or `request` builds
# a new object per dependency and request.


async def provide_conn(scope: Scope) -> AsyncGenerator[asyncpg.Connection, None]:
    """A pooled connection for the duration of one request (the guard's, when it checked one out)."""
    connections: RequestConnections = scope["app"].state.connections
    holder = scope.get("state")
    conn = holder.pop(GUARD_CONN, None) if isinstance(holder, dict) else None
    if conn is None:
        try:
            conn = await connections.acquire()
        except DB_DOWN as exc:
            raise Unavailable("database unavailable") from exc
    try:
        yield conn
    finally:
        await connections.release(conn)


def provide_principal(scope: Scope) -> Principal:
    """The authenticated caller (the guard has already required one)."""
    principal = scope.get("user")
    if not isinstance(principal, Principal):
        raise Unauthorized()
    return principal


def provide_settings(scope: Scope) -> Settings:
    return scope["app"].state.settings


def provide_host(scope: Scope) -> PluginHost:
    return scope["app"].state.plugins


DEPENDENCIES = {
    "conn": provide_conn,
    "principal": provide_principal,
    "settings": provide_settings,
    "host": provide_host,
}
