"""SQL of the agents domain: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql
from opsgate.errors import Conflict, Invalid, NotFound

_Q = sql.load(__package__)
GET_CONFIG = _Q["get_config"]
PUT_CONFIG = _Q["put_config"]
SET_TICKET_AGENT = _Q["set_ticket_agent"]
CLEAR_TICKET_AGENT = _Q["clear_ticket_agent"]
INSERT_AGENT = _Q["insert_agent"]
INSERT_TASK = _Q["insert_task"]
GET_AGENT = _Q["get_agent"]
LOCK_AGENT = _Q["lock_agent"]
LIST_AGENTS = _Q["list_agents"]
COUNT_AGENTS = _Q["count_agents"]
LIST_TASKS = _Q["list_tasks"]
GET_TASK = _Q["get_task"]
AGENT_TASKS = _Q["agent_tasks"]
LATEST_TASK = _Q["latest_task"]
TASK_PROGRESS = _Q["task_progress"]
AGENT_AUDIT = _Q["agent_audit"]
END_AGENT = _Q["end_agent"]
END_ACTIVE_TASKS = _Q["end_active_tasks"]
REQUEUE_AGENT = _Q["requeue_agent"]
REPORT_TASK = _Q["report_task"]
REPORT_AGENT = _Q["report_agent"]
AGENT_COUNTS = _Q["agent_counts"]
TASK_COUNTS = _Q["task_counts"]
TASK_DURATIONS = _Q["task_durations"]
RUNNING_TASKS = _Q["running_tasks"]
LIST_RUNNERS = _Q["list_runners"]
TICKET_TASKS = _Q["ticket_tasks"]

Row = dict[str, Any]


def _one(row: asyncpg.Record | None) -> Row | None:
    return None if row is None else dict(row)


async def get_config(conn: Connection) -> Row:
    row = await conn.fetchrow(GET_CONFIG)
    if row is None:  # the migration inserts the row; only a hand-edited database lacks it
        return {"config": {}, "version": 0, "updated_at": None, "updated_by": None}
    return dict(row)


async def put_config(conn: Connection, config: dict[str, Any], actor: str) -> Row:
    return dict(await conn.fetchrow(PUT_CONFIG, config, actor))


async def set_ticket_agent(conn: Connection, ticket_id: int, agent_id: int) -> None:
    await conn.execute(SET_TICKET_AGENT, ticket_id, agent_id)


async def clear_ticket_agent(conn: Connection, ticket_id: int, agent_id: int) -> None:
    await conn.execute(CLEAR_TICKET_AGENT, ticket_id, agent_id)


async def insert_agent(conn: Connection, *, ticket_id: int | None, name: str, harness: str, model: str,
                       profile_id: str | None, task_type: str, created_by: str,
                       replaces_agent_id: int | None) -> Row:
    return dict(await conn.fetchrow(INSERT_AGENT, ticket_id, name, harness, model, profile_id, task_type,
                                    created_by, replaces_agent_id))


async def insert_task(conn: Connection, *, agent_id: int, ticket_id: int | None, task_type: str, prompt: str,
                      harness: str, model: str, model_base_url: str | None, timeout_minutes: int,
                      created_by: str) -> Row:
    """A queued task; `Conflict` when the ticket already has an active task of this type."""
    try:
        return dict(await conn.fetchrow(INSERT_TASK, agent_id, ticket_id, task_type, prompt, harness, model,
                                        model_base_url, timeout_minutes, created_by))
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"ticket {ticket_id} already has an active {task_type} task") from exc
    except asyncpg.CheckViolationError as exc:
        raise Invalid("prompt" if "prompt" in (exc.constraint_name or "") else "body",
                      "violates the allowed values") from exc
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound("referenced row does not exist") from exc


async def get_agent(conn: Connection, agent_id: int, *, lock: bool = False) -> Row | None:
    return _one(await conn.fetchrow(LOCK_AGENT if lock else GET_AGENT, agent_id))


async def list_agents(conn: Connection, statuses: list[str] | None, ticket_id: int | None,
                      scope: tuple[list[str] | None, list[str] | None], limit: int, offset: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_AGENTS, statuses, ticket_id, *scope, limit, offset)]


async def count_agents(conn: Connection, statuses: list[str] | None, ticket_id: int | None,
                       scope: tuple[list[str] | None, list[str] | None]) -> int:
    return await conn.fetchval(COUNT_AGENTS, statuses, ticket_id, *scope)


async def list_tasks(conn: Connection, statuses: list[str] | None, agent_id: int | None, ticket_id: int | None,
                     scope: tuple[list[str] | None, list[str] | None], limit: int, offset: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_TASKS, statuses, agent_id, ticket_id, *scope, limit, offset)]


async def get_task(conn: Connection, task_id: int) -> Row | None:
    return _one(await conn.fetchrow(GET_TASK, task_id))


async def agent_tasks(conn: Connection, agent_id: int, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(AGENT_TASKS, agent_id, limit)]


async def latest_task(conn: Connection, agent_id: int) -> Row | None:
    return _one(await conn.fetchrow(LATEST_TASK, agent_id))


async def task_progress(conn: Connection, task_id: int, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(TASK_PROGRESS, task_id, limit)]


async def agent_audit(conn: Connection, agent_id: int, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(AGENT_AUDIT, agent_id, limit)]


async def end_agent(conn: Connection, agent_id: int, status: str, reason: str) -> Row | None:
    return _one(await conn.fetchrow(END_AGENT, agent_id, status, reason))


async def end_active_tasks(conn: Connection, agent_id: int, status: str, reason: str, actor: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(END_ACTIVE_TASKS, agent_id, status, reason, actor)]


async def requeue_agent(conn: Connection, agent_id: int, reason: str) -> Row | None:
    return _one(await conn.fetchrow(REQUEUE_AGENT, agent_id, reason))


async def report_task(conn: Connection, agent_id: int, status: str, reason: str | None, progress: int | None,
                      summary: str | None) -> Row | None:
    return _one(await conn.fetchrow(REPORT_TASK, agent_id, status, reason, progress, summary))


async def report_agent(conn: Connection, agent_id: int, status: str, reason: str | None) -> Row | None:
    return _one(await conn.fetchrow(REPORT_AGENT, agent_id, status, reason))


async def counts(conn: Connection) -> tuple[dict[str, int], dict[str, int], Row]:
    agents = {r["status"]: r["n"] for r in await conn.fetch(AGENT_COUNTS)}
    tasks = {r["status"]: r["n"] for r in await conn.fetch(TASK_COUNTS)}
    durations = dict(await conn.fetchrow(TASK_DURATIONS))
    return agents, tasks, durations


async def running_tasks(conn: Connection) -> list[Row]:
    return [dict(r) for r in await conn.fetch(RUNNING_TASKS)]


async def list_runners(conn: Connection) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_RUNNERS)]


TICKET_SCOPE = _Q["ticket_scope"]


async def ticket_scope(conn: Connection, ticket_id: int) -> tuple[str, str | None] | None:
    """(classification, owning group) of a ticket, for filtering events per caller."""
    row = await conn.fetchrow(TICKET_SCOPE, ticket_id)
    return None if row is None else (row["security_classification"], row["owning_group"])


async def ticket_tasks(conn: Connection, ticket_id: int, limit: int, tail_chars: int,
                       agent_id: int | None = None) -> list[Row]:
    return [dict(r) for r in await conn.fetch(TICKET_TASKS, ticket_id, limit, tail_chars, agent_id)]
