"""SQL of provider sync: run statements, return rows. No rules here."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg import Connection

from opsgate.db import sql

_Q = sql.load(__package__)
CLAIM_DUE = _Q["claim_due"]
OUTBOX_DELIVERED = _Q["outbox_delivered"]
OUTBOX_RETRY = _Q["outbox_retry"]
OUTBOX_FAILED = _Q["outbox_failed"]
OUTBOX_RELEASE = _Q["outbox_release"]
OUTBOX_SETTLE_CREATE = _Q["outbox_settle_create"]
OUTBOX_REQUEUE_CREATE = _Q["outbox_requeue_create"]
OUTBOX_ENQUEUE = _Q["outbox_enqueue"]
OUTBOX_ENQUEUE_MISSING_CREATES = _Q["outbox_enqueue_missing_creates"]
OUTBOX_FOR_TICKET = _Q["outbox_for_ticket"]
OUTBOX_OPEN_COUNT = _Q["outbox_open_count"]
OUTBOX_CREATE_BY_MARKER = _Q["outbox_create_by_marker"]
OUTBOX_ECHO_CANDIDATES = _Q["outbox_echo_candidates"]
OUTBOX_SET_ECHO = _Q["outbox_set_echo"]
OUTBOX_STATS = _Q["outbox_stats"]
TICKET_FOR_DELIVERY = _Q["ticket_for_delivery"]
TICKET_LINK_REMOTE = _Q["ticket_link_remote"]
TICKET_SYNC_STATE = _Q["ticket_sync_state"]
TICKET_BY_REMOTE = _Q["ticket_by_remote"]
TICKET_LOCK = _Q["ticket_lock"]
TICKET_RETARGET = _Q["ticket_retarget"]
TICKET_MARK_PENDING_CREATE = _Q["ticket_mark_pending_create"]
IMPORT_TICKET = _Q["import_ticket"]
TICKET_REMOTE_SEEN = _Q["ticket_remote_seen"]
NOTE_KEY_CLAIM = _Q["note_key_claim"]
NOTE_KEY_SET_NOTE = _Q["note_key_set_note"]
NOTE_KEYS_OF = _Q["note_keys_of"]
SYNC_STATE_LEASE = _Q["sync_state_lease"]
SYNC_STATE_SAVE = _Q["sync_state_save"]
SYNC_STATE_RELEASE = _Q["sync_state_release"]
SYNC_STATE_GET = _Q["sync_state_get"]

Row = dict[str, Any]


def _row(record: asyncpg.Record | None) -> Row | None:
    return None if record is None else dict(record)


# --- outbox ---------------------------------------------------------------------


async def claim_due(conn: Connection, owner: str, limit: int, lease_seconds: float,
                    ticket_id: int | None = None) -> list[Row]:
    """Lease the due head row of up to `limit` tickets' queues (or of one ticket's)."""
    rows = await conn.fetch(CLAIM_DUE, owner, limit, lease_seconds, ticket_id)
    return sorted((dict(r) for r in rows), key=lambda r: r["id"])


async def mark_delivered(conn: Connection, outbox_id: int, owner: str, *, skipped: str | None = None) -> Row | None:
    """Delivered (or `skipped` with the reason); None when the claim was lost."""
    return _row(await conn.fetchrow(OUTBOX_DELIVERED, outbox_id, owner, "skipped" if skipped else "delivered",
                                    skipped))


async def mark_retry(conn: Connection, outbox_id: int, owner: str, delay_seconds: float, error: str) -> Row | None:
    return _row(await conn.fetchrow(OUTBOX_RETRY, outbox_id, owner, delay_seconds, error))


async def mark_failed(conn: Connection, outbox_id: int, owner: str, error: str, *, attempted: bool = True) -> Row | None:
    return _row(await conn.fetchrow(OUTBOX_FAILED, outbox_id, owner, 1 if attempted else 0, error))


async def release(conn: Connection, outbox_id: int, owner: str) -> None:
    await conn.execute(OUTBOX_RELEASE, outbox_id, owner)


async def settle_create(conn: Connection, ticket_id: int) -> None:
    await conn.execute(OUTBOX_SETTLE_CREATE, ticket_id)


async def requeue_create(conn: Connection, ticket_id: int, provider: str) -> list[int]:
    return [r["id"] for r in await conn.fetch(OUTBOX_REQUEUE_CREATE, ticket_id, provider)]


async def enqueue(conn: Connection, ticket_id: int, provider: str, op: str, payload: dict[str, Any]) -> Row:
    return dict(await conn.fetchrow(OUTBOX_ENQUEUE, ticket_id, provider, op, payload))


async def enqueue_missing_creates(conn: Connection, limit: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(OUTBOX_ENQUEUE_MISSING_CREATES, limit)]


async def outbox_for_ticket(conn: Connection, ticket_id: int) -> list[Row]:
    return [dict(r) for r in await conn.fetch(OUTBOX_FOR_TICKET, ticket_id)]


async def open_count(conn: Connection, ticket_id: int, provider: str) -> int:
    return int(await conn.fetchval(OUTBOX_OPEN_COUNT, ticket_id, provider))


async def create_by_marker(conn: Connection, provider: str, marker: str) -> int | None:
    return await conn.fetchval(OUTBOX_CREATE_BY_MARKER, provider, marker)


async def echo_candidates(conn: Connection, ticket_id: int, provider: str) -> list[Row]:
    return [dict(r) for r in await conn.fetch(OUTBOX_ECHO_CANDIDATES, ticket_id, provider)]


async def set_echo(conn: Connection, outbox_id: int, key: str) -> bool:
    return await conn.fetchval(OUTBOX_SET_ECHO, outbox_id, key) is not None


async def outbox_stats(conn: Connection) -> list[Row]:
    return [dict(r) for r in await conn.fetch(OUTBOX_STATS)]


# --- tickets ----------------------------------------------------------------------


async def ticket_for_delivery(conn: Connection, ticket_id: int) -> Row | None:
    return _row(await conn.fetchrow(TICKET_FOR_DELIVERY, ticket_id))


async def link_remote(conn: Connection, ticket_id: int, provider: str, provider_ref: str, provider_class: str,
                      url: str | None, payload: dict[str, Any]) -> Row | None:
    """Set the remote ref once (only while none is known); None when someone linked it first."""
    try:
        return _row(await conn.fetchrow(TICKET_LINK_REMOTE, ticket_id, provider, provider_ref, provider_class, url,
                                        payload))
    except asyncpg.UniqueViolationError:
        return None


async def set_sync_state(conn: Connection, ticket_id: int, status: str | None, error: str | None,
                         payload: dict[str, Any] | None = None) -> Row | None:
    return _row(await conn.fetchrow(TICKET_SYNC_STATE, ticket_id, status, error, payload or {}))


async def ticket_by_remote(conn: Connection, provider: str, provider_class: str, provider_ref: str) -> Row | None:
    """The canonical ticket of a remote record, locked for the caller's transaction."""
    return _row(await conn.fetchrow(TICKET_BY_REMOTE, provider, provider_class, provider_ref))


async def lock_ticket(conn: Connection, ticket_id: int) -> Row | None:
    """The ticket row plus `agent_active`, locked for the caller's transaction."""
    return _row(await conn.fetchrow(TICKET_LOCK, ticket_id))


async def retarget(conn: Connection, ticket_id: int, provider: str) -> Row | None:
    return _row(await conn.fetchrow(TICKET_RETARGET, ticket_id, provider))


async def mark_pending_create(conn: Connection, ticket_id: int, provider: str) -> bool:
    return await conn.fetchval(TICKET_MARK_PENDING_CREATE, ticket_id, provider) is not None


async def import_ticket(conn: Connection, *args: Any) -> Row | None:
    """Insert a remote ticket as a canonical one; None when it already exists (a concurrent import)."""
    return _row(await conn.fetchrow(IMPORT_TICKET, *args))


async def remote_seen(conn: Connection, ticket_id: int, payload: dict[str, Any], url: str | None) -> None:
    await conn.execute(TICKET_REMOTE_SEEN, ticket_id, payload, url)


# --- inbound notes and cursors ------------------------------------------------------


async def claim_note_key(conn: Connection, ticket_id: int, key: str, outbox_id: int | None = None) -> bool:
    """True when this case-log entry was not handled before (and now is)."""
    return await conn.fetchval(NOTE_KEY_CLAIM, ticket_id, key, outbox_id) is not None


async def set_note_key_note(conn: Connection, ticket_id: int, key: str, note_id: int) -> None:
    await conn.execute(NOTE_KEY_SET_NOTE, ticket_id, key, note_id)


async def known_note_keys(conn: Connection, ticket_id: int, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    return {r["note_key"] for r in await conn.fetch(NOTE_KEYS_OF, ticket_id, keys)}


async def take_lease(conn: Connection, provider: str, owner: str, seconds: float) -> Row | None:
    """The stored cursor when the pull lease is ours now; None when another process holds it."""
    return _row(await conn.fetchrow(SYNC_STATE_LEASE, provider, owner, seconds))


async def save_cursor(conn: Connection, provider: str, owner: str, cursor: str | None, seen: int,
                      lease_seconds: float) -> bool:
    return await conn.fetchval(SYNC_STATE_SAVE, provider, owner, cursor, seen, lease_seconds) is not None


async def release_lease(conn: Connection, provider: str, owner: str, error: str | None) -> None:
    await conn.execute(SYNC_STATE_RELEASE, provider, owner, error)


async def sync_state(conn: Connection, provider: str) -> Row | None:
    return _row(await conn.fetchrow(SYNC_STATE_GET, provider))
