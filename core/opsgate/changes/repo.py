"""SQL of approval gates: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql
from opsgate.errors import Invalid, NotFound

_Q = sql.load(__package__)
INSERT_CHANGE = _Q["insert_change"]
GET_CHANGE = _Q["get_change"]
LOCK_CHANGE = _Q["lock_change"]
LIST_CHANGES = _Q["list_changes"]
COUNT_CHANGES = _Q["count_changes"]
LIST_PENDING = _Q["list_pending"]
CHANGE_STATS = _Q["change_stats"]
APPROVE_CHANGE = _Q["approve_change"]
REJECT_CHANGE = _Q["reject_change"]
CANCEL_CHANGE = _Q["cancel_change"]
FINISH_CHANGE = _Q["finish_change"]
EXPIRE_CHANGE = _Q["expire_change"]
DUE_CHANGES = _Q["due_changes"]
AUTO_COMPLETABLE = _Q["auto_completable"]
AGENT_SPAWNER = _Q["agent_spawner"]
ADD_GATE_NOTE = _Q["add_gate_note"]

Row = dict[str, Any]


def _one(row: asyncpg.Record | None) -> Row | None:
    return None if row is None else dict(row)


async def insert_change(conn: Connection, *args: Any) -> Row:
    try:
        return dict(await conn.fetchrow(INSERT_CHANGE, *args))
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound("ticket not found") from exc
    except asyncpg.CheckViolationError as exc:
        field = (exc.constraint_name or "body").removeprefix("change_requests_").removesuffix("_check")
        raise Invalid(field, "violates the allowed values") from exc


async def get_change(conn: Connection, change_id: int) -> Row | None:
    return _one(await conn.fetchrow(GET_CHANGE, change_id))


async def lock_change(conn: Connection, change_id: int) -> Row | None:
    return _one(await conn.fetchrow(LOCK_CHANGE, change_id))


async def list_changes(conn: Connection, *args: Any) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_CHANGES, *args)]


async def count_changes(conn: Connection, *args: Any) -> int:
    return await conn.fetchval(COUNT_CHANGES, *args)


async def list_pending(conn: Connection, *args: Any) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_PENDING, *args)]


async def change_stats(conn: Connection, *args: Any) -> list[Row]:
    return [dict(r) for r in await conn.fetch(CHANGE_STATS, *args)]


async def approve_change(conn: Connection, *args: Any) -> Row | None:
    return _one(await conn.fetchrow(APPROVE_CHANGE, *args))


async def reject_change(conn: Connection, *args: Any) -> Row | None:
    return _one(await conn.fetchrow(REJECT_CHANGE, *args))


async def cancel_change(conn: Connection, *args: Any) -> Row | None:
    return _one(await conn.fetchrow(CANCEL_CHANGE, *args))


async def finish_change(conn: Connection, *args: Any) -> Row | None:
    return _one(await conn.fetchrow(FINISH_CHANGE, *args))


async def expire_change(conn: Connection, change_id: int, expected: str) -> Row | None:
    return _one(await conn.fetchrow(EXPIRE_CHANGE, change_id, expected))


async def due_changes(conn: Connection, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(DUE_CHANGES, limit)]


async def auto_completable(conn: Connection, agent_id: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(AUTO_COMPLETABLE, agent_id)]


async def agent_spawner(conn: Connection, agent_id: int) -> str | None:
    return await conn.fetchval(AGENT_SPAWNER, agent_id)


async def add_gate_note(conn: Connection, ticket_id: int, kind: str, body: str, author: str, agent_id: int | None,
                        details: dict[str, Any], channel: str) -> int:
    row = await conn.fetchrow(ADD_GATE_NOTE, ticket_id, kind, body, author, agent_id, details, channel)
    return row["id"]


LOCK_AGENT = _Q["lock_agent"]
ADD_STEERING_EVENT = _Q["add_steering_event"]
COMPLETED_TASKS_WITH_APPROVED_GATES = _Q["completed_tasks_with_approved_gates"]


async def lock_agent(conn: Connection, agent_id: int) -> Row | None:
    return _one(await conn.fetchrow(LOCK_AGENT, agent_id))


async def add_steering_event(conn: Connection, agent_id: int, ticket_id: int | None, note_id: int, kind: str,
                             body: str, author: str) -> int | None:
    return await conn.fetchval(ADD_STEERING_EVENT, agent_id, ticket_id, note_id, kind, body, author)


async def completed_tasks_with_approved_gates(conn: Connection, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(COMPLETED_TASKS_WITH_APPROVED_GATES, limit)]
