"""Audit rows: written in the same transaction as the change they describe."""

from __future__ import annotations

from typing import Any

from asyncpg import Connection

from opsgate.db import sql

_Q = sql.load(__package__)
INSERT_AUDIT = _Q["insert_audit"]


async def record(
    conn: Connection,
    *,
    actor: str,
    action: str,
    actor_kind: str = "system",
    category: str = "general",
    level: str = "info",
    target_type: str | None = None,
    target_id: str | int | None = None,
    ticket_id: int | None = None,
    agent_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Insert one audit row; returns its id."""
    return await conn.fetchval(
        INSERT_AUDIT, actor, actor_kind, action, category, level, target_type,
        None if target_id is None else str(target_id), ticket_id, agent_id, details or {},
    )
