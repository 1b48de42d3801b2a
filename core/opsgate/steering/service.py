"""Steering events: created from ticket notes, listed, acknowledged, mirrored into work dirs.

A note from a human or ticketing-provider source (`opsgate.tickets.vocab.HUMAN_SOURCES`)
on a ticket with live agents becomes one steering event per agent (never for the
note's own author). Creation is idempotent (`UNIQUE (agent_id, note_id)`), so the
NOTIFY-driven relay in every process and the runner's periodic backfill can both
run it without duplicates.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncpg import Connection

from opsgate.audit import repo as audit
from opsgate.events import repo as events
from opsgate.steering.repo import (
    ACK,
    BACKFILL_AGENT,
    COUNT_PENDING,
    GET_EVENT,
    LIST_FOR_AGENT,
    MARK_DELIVERED,
    STEER_FOR_NOTE,
)
from opsgate.tickets.vocab import HUMAN_SOURCES

log = logging.getLogger(__name__)

SOURCES = sorted(HUMAN_SOURCES)
INBOX_LIMIT = 50


async def _announce(conn: Connection, rows: list[Any]) -> None:
    for row in rows:
        await events.emit(conn, "agent_steering_created", actor="control-plane", ticket_id=row["ticket_id"],
                          agent_id=row["agent_id"], category="agent",
                          payload={"steering_event_id": row["id"], "note_id": row["note_id"],
                                   "agent_id": row["agent_id"], "ticket_id": row["ticket_id"]})


async def relay_note(conn: Connection, note_id: int) -> list[dict[str, Any]]:
    """Steering events for a new note (none when its source does not steer); idempotent."""
    async with conn.transaction():
        rows = await conn.fetch(STEER_FOR_NOTE, note_id, SOURCES)
        await _announce(conn, rows)
    if rows:
        log.info("steering relayed", extra={"note_id": note_id, "agents": [r["agent_id"] for r in rows]})
    return [dict(r) for r in rows]


async def backfill(conn: Connection, agent_id: int) -> int:
    """Relay every steering note of the agent's ticket that is not relayed yet; returns how many."""
    async with conn.transaction():
        rows = await conn.fetch(BACKFILL_AGENT, agent_id, SOURCES)
        await _announce(conn, rows)
    return len(rows)


async def list_events(conn: Connection, agent_id: int, limit: int = INBOX_LIMIT) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST_FOR_AGENT, agent_id, limit)]


async def pending(conn: Connection, agent_id: int) -> int:
    return await conn.fetchval(COUNT_PENDING, agent_id)


async def mark_delivered(conn: Connection, event_ids: list[int]) -> None:
    if event_ids:
        await conn.execute(MARK_DELIVERED, event_ids)


async def acknowledge(conn: Connection, agent_id: int, event_id: int, actor: str,
                      actor_kind: str) -> dict[str, Any] | None:
    """Mark an event acknowledged; returns it (unchanged when it already was), None when missing."""
    async with conn.transaction():
        row = await conn.fetchrow(ACK, agent_id, event_id, actor)
        if row is None:
            existing = await conn.fetchrow(GET_EVENT, agent_id, event_id)
            return None if existing is None else dict(existing)
        await audit.record(conn, actor=actor, actor_kind=actor_kind, action="agent_steering_acknowledged",
                           category="agent", target_type="steering_event", target_id=event_id,
                           ticket_id=row["ticket_id"], agent_id=agent_id, details={"note_id": row["note_id"]})
        await events.emit(conn, "agent_steering_acked", actor=actor, ticket_id=row["ticket_id"], agent_id=agent_id,
                          category="agent", payload={"steering_event_id": event_id, "agent_id": agent_id})
    return dict(row)
