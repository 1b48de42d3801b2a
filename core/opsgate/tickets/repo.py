"""SQL of the ticket domain: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql
from opsgate.errors import Conflict, Invalid, NotFound
from opsgate.tickets.listing import COUNT_CAP, ListQuery

_Q = sql.load(__package__)
GET_TICKET = _Q["get_ticket"]
LOCK_TICKET = _Q["lock_ticket"]
CREATE_TICKET = _Q["create_ticket"]
GET_IDEMPOTENCY_KEY = _Q["get_idempotency_key"]
DELETE_EXPIRED_IDEMPOTENCY_KEYS = _Q["delete_expired_idempotency_keys"]
TRANSITION_TICKET = _Q["transition_ticket"]
ASSIGN_TICKET = _Q["assign_ticket"]
ADD_NOTE = _Q["add_note"]
GET_NOTE = _Q["get_note"]
ADD_ATTACHMENT = _Q["add_attachment"]
LIST_NOTES = _Q["list_notes"]
LIST_ATTACHMENTS = _Q["list_attachments"]

Row = dict[str, Any]


def _mapped(exc: asyncpg.PostgresError) -> Exception:
    """Driver errors that a caller can cause, as domain errors."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"duplicate value: {exc.constraint_name or 'unique constraint'}")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound("referenced row does not exist")
    if isinstance(exc, asyncpg.CheckViolationError):
        return Invalid(_check_field(exc.constraint_name), "violates the allowed values")
    return exc


def _check_field(constraint: str | None) -> str:
    # tickets_status_check -> status
    if not constraint:
        return "body"
    for prefix in ("tickets_", "ticket_notes_", "ticket_attachments_", "idempotency_keys_"):
        if constraint.startswith(prefix):
            return constraint[len(prefix):].removesuffix("_check")
    return constraint


async def _fetchrow(conn: Connection, statement: str, *args: Any) -> asyncpg.Record | None:
    try:
        return await conn.fetchrow(statement, *args)
    except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError, asyncpg.CheckViolationError) as exc:
        raise _mapped(exc) from exc


async def get_ticket(conn: Connection, ticket_id: int) -> Row | None:
    row = await conn.fetchrow(GET_TICKET, ticket_id)
    return None if row is None else dict(row)


async def lock_ticket(conn: Connection, ticket_id: int) -> Row | None:
    row = await conn.fetchrow(LOCK_TICKET, ticket_id)
    return None if row is None else dict(row)


async def create_ticket(conn: Connection, *args: Any) -> Row | None:
    """Ticket, creation note, audit row and events in one statement; None when the idempotency key is taken."""
    row = await _fetchrow(conn, CREATE_TICKET, *args)
    return None if row is None else dict(row)


async def idempotency_key(conn: Connection, principal: str, scope: str, key: str, ttl_hours: float) -> Row | None:
    row = await conn.fetchrow(GET_IDEMPOTENCY_KEY, principal, scope, key, ttl_hours)
    return None if row is None else dict(row)


async def delete_expired_idempotency_keys(conn: Connection, ttl_hours: float, limit: int) -> int:
    status = await conn.execute(DELETE_EXPIRED_IDEMPOTENCY_KEYS, ttl_hours, limit)
    return int(status.split()[-1])


def _split_note(row: asyncpg.Record) -> tuple[Row, Row]:
    ticket: Row = {}
    note: Row = {}
    for key, value in row.items():
        if key.startswith("n_"):
            note[key[2:]] = value
        elif key not in ("audit_id", "event_ids"):
            ticket[key] = value
    note["ticket_id"] = ticket["id"]
    return ticket, note


async def transition_ticket(conn: Connection, *args: Any) -> tuple[Row, Row, list[int]] | None:
    """(ticket after, note, event ids) or None when the ticket was not in the expected status."""
    row = await _fetchrow(conn, TRANSITION_TICKET, *args)
    return None if row is None else (*_split_note(row), list(row["event_ids"]))


async def assign_ticket(conn: Connection, *args: Any) -> tuple[Row, Row, list[int]] | None:
    row = await _fetchrow(conn, ASSIGN_TICKET, *args)
    return None if row is None else (*_split_note(row), list(row["event_ids"]))


async def add_note(conn: Connection, ticket_id: int, body: str, author: str, source: str, visibility: str,
                   agent_id: int | None, details: dict[str, Any], steer: bool, idempotency_principal: str,
                   idempotency_key: str | None, request_hash: str | None, event_actor: str,
                   idempotency_ttl_hours: float = 24.0) -> Row | None:
    """The new note with its audit row and event; None when the idempotency key is taken."""
    row = await _fetchrow(conn, ADD_NOTE, ticket_id, body, author, source, visibility, agent_id, details, steer,
                          idempotency_principal, idempotency_key, request_hash, event_actor,
                          idempotency_ttl_hours)
    return None if row is None else dict(row)


async def get_note(conn: Connection, note_id: int) -> Row | None:
    row = await conn.fetchrow(GET_NOTE, note_id)
    return None if row is None else dict(row)


async def add_attachment(conn: Connection, *args: Any) -> Row | None:
    """The new attachment; None when note_id does not name a note of the ticket."""
    row = await _fetchrow(conn, ADD_ATTACHMENT, *args)
    return None if row is None else dict(row)


async def list_notes(conn: Connection, ticket_id: int, limit: int) -> list[Row]:
    rows = await conn.fetch(LIST_NOTES, ticket_id, limit)
    return [dict(r) for r in reversed(rows)]


async def list_attachments(conn: Connection, ticket_id: int, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(LIST_ATTACHMENTS, ticket_id, limit)]


async def list_tickets(conn: Connection, query: ListQuery) -> tuple[list[Row], int, bool]:
    """(rows, total, total_exact): exact up to COUNT_CAP matches, else the planner's estimate."""
    rows = await conn.fetch(query.rows_sql, *query.rows_params)
    total = await conn.fetchval(query.count_sql, *query.count_params)
    if total <= COUNT_CAP:
        return [dict(r) for r in rows], total, True
    plan = await conn.fetchval(query.estimate_sql, *query.estimate_params)
    estimate = int(plan[0]["Plan"]["Plan Rows"]) if plan else total
    return [dict(r) for r in rows], max(estimate, total), False


async def fetch_all(conn: Connection, statement: str, params: list[Any]) -> list[Row]:
    """Run a composed statement (related tickets) and return its rows."""
    return [dict(r) for r in await conn.fetch(statement, *params)]
