"""SQL of access requests: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql

_Q = sql.load(__package__)
INSERT_ACCESS_REQUEST = _Q["insert_access_request"]
SET_LEASE = _Q["set_lease"]
LOCK_BY_CHANGE = _Q["lock_by_change"]
DECIDE = _Q["decide"]
LIST_FOR_TICKET = _Q["list_for_ticket"]
GET_VIEW = _Q["get_view"]

Row = dict[str, Any]


def _one(row: asyncpg.Record | None) -> Row | None:
    return None if row is None else dict(row)


async def insert_access_request(conn: Connection, *args: Any) -> int:
    return await conn.fetchval(INSERT_ACCESS_REQUEST, *args)


async def set_lease(conn: Connection, access_request_id: int, lease_id: str) -> None:
    await conn.execute(SET_LEASE, access_request_id, lease_id)


async def lock_by_change(conn: Connection, change_id: int) -> Row | None:
    return _one(await conn.fetchrow(LOCK_BY_CHANGE, change_id))


async def decide(conn: Connection, access_request_id: int, expected: list[str], status: str,
                 actor: str) -> Row | None:
    return _one(await conn.fetchrow(DECIDE, access_request_id, expected, status, actor))


async def list_for_ticket(conn: Connection, ticket_id: int, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_FOR_TICKET, ticket_id, limit)]


async def get_view(conn: Connection, access_request_id: int) -> Row | None:
    return _one(await conn.fetchrow(GET_VIEW, access_request_id))


CREATE_CHILD_TICKET = _Q["create_child_ticket"]
SET_CHILD_STATUS = _Q["set_child_status"]


async def create_child_ticket(conn: Connection, *args: Any) -> int:
    """The new child ticket's id (its note, audit row and events are written with it)."""
    return (await conn.fetchrow(CREATE_CHILD_TICKET, *args))["id"]


async def set_child_status(conn: Connection, *args: Any) -> bool:
    """False when the child ticket was no longer in the expected status."""
    return await conn.fetchrow(SET_CHILD_STATUS, *args) is not None
