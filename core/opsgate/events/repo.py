"""Domain events: an outbox row plus a NOTIFY, inside the writing transaction.

Listeners (the WebSocket endpoint, the `opsgate_event` fan-out, runners) are
woken by `NOTIFY opsgate_events, '<id>'` after commit and read the row.
"""

from __future__ import annotations

from typing import Any

from asyncpg import Connection

from opsgate.db import sql
from opsgate.protocols import DomainEvent

_Q = sql.load(__package__)
INSERT_EVENT = _Q["insert_event"]
NOTIFY_EVENT = _Q["notify_event"]
GET_EVENT = _Q["get_event"]

CHANNEL = "opsgate_events"


async def emit(
    conn: Connection,
    kind: str,
    *,
    actor: str | None = None,
    ticket_id: int | None = None,
    agent_id: int | None = None,
    payload: dict[str, Any] | None = None,
    category: str = "general",
    level: str = "info",
) -> int:
    """Write an event row and queue its NOTIFY; call inside the change's transaction."""
    row = await conn.fetchrow(INSERT_EVENT, kind, category, level, actor, ticket_id, agent_id, payload or {})
    await conn.execute(NOTIFY_EVENT, CHANNEL, str(row["id"]))
    return row["id"]


async def get(conn: Connection, event_id: int) -> DomainEvent | None:
    """Read one event back as a `DomainEvent`."""
    row = await conn.fetchrow(GET_EVENT, event_id)
    if row is None:
        return None
    return DomainEvent(id=row["id"], kind=row["kind"], ticket_id=row["ticket_id"], agent_id=row["agent_id"],
                       actor=row["actor"], payload=row["payload"], created_at=row["created_at"])
