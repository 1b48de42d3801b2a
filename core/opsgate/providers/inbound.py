"""Inbound sync: pull remote tickets changed since a cursor and fold them into the canonical record.

`pull_once` runs one pass for one provider under a lease stored with its
cursor (`provider_sync_state`), so several processes may run pull loops and
only one pulls a given provider at a time. Each remote record is upserted in
its own transaction (`upsert_record`):

1. find the canonical ticket by (provider, provider_class, provider_ref); else
   by the marker an opsgate create wrote into the remote record (a create whose
   reply was lost, or whose result the dispatcher has not recorded yet): link
   it and settle its create; else import it as a new canonical ticket. An
   import never triggers auto-assignment (the intake rules are not consulted
   at all), and the first pass of a provider (no cursor yet) is marked
   `catch_up` in the events and audit.
2. reconcile the status (`reconcile.decide`) when the remote status changed
   since opsgate last saw or set it; conflicts become notes.
3. mirror case-log entries not handled before as notes with `source` = the
   provider, through the tickets note statement (so they emit
   `ticket_note_added` with `steer: true`); HTML stripped; entries that are
   notes opsgate pushed itself (same text, same log, queued for this ticket)
   are recognised and not mirrored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import asyncpg

from opsgate.audit.repo import record as audit
from opsgate.events.notifier import notify_committed
from opsgate.plugins import PluginHost, call_plugin
from opsgate.protocols import ProviderRecord, TicketProvider
from opsgate.providers import reconcile, registry, repo
from opsgate.providers.schemas import PullSummary
from opsgate.settings import Settings
from opsgate.tickets import repo as tickets_repo
from opsgate.tickets import vocab

log = logging.getLogger(__name__)

MAX_TITLE = 500
MAX_TEXT_BYTES = 65536


def sync_actor(provider: str) -> str:
    return f"{provider}-sync"


def _bounded(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def _title(record: ProviderRecord) -> str:
    title = " ".join((record.title or "").split())
    if not title:
        title = f"{record.provider_class} {record.payload.get('ref') or record.provider_ref}"
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


def _ticket_class(record: ProviderRecord) -> str:
    try:
        return vocab.ticket_class(record.provider_class)
    except Exception:  # a class opsgate does not know (e.g. a custom one): treat it as an incident
        return "Incident"


def _priority(record: ProviderRecord) -> str:
    try:
        return vocab.priority(record.priority) if record.priority else "P3"
    except Exception:
        return "P3"


def _url(provider: TicketProvider, record: ProviderRecord) -> str | None:
    if record.url:
        return record.url
    try:
        return provider.external_url(record.provider_class, record.provider_ref)
    except Exception:
        log.exception("provider external_url failed", extra={"plugin": getattr(provider, "name", "?")})
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- one record -----------------------------------------------------------------------


async def upsert_record(conn: asyncpg.Connection, name: str, provider: TicketProvider, record: ProviderRecord,
                        summary: PullSummary, *, catch_up: bool = False) -> tuple[int, bool]:
    """Fold one remote record into the canonical record; returns (ticket id, created)."""
    events: list[int] = []
    created = False
    url = _url(provider, record)
    seen = registry.provider_payload(record.payload, record.remote_status)
    seen["last_seen_update"] = _iso(record.updated_at)
    async with conn.transaction():
        row = await repo.ticket_by_remote(conn, name, record.provider_class, record.provider_ref)
        linked = False
        if row is None:
            row, linked = await _link_by_marker(conn, name, record, url, seen)
        if row is None:
            row, events = await _import(conn, name, record, url, seen, catch_up=catch_up)
            created = row is not None
            if row is None:  # imported concurrently by another process
                row = await repo.ticket_by_remote(conn, name, record.provider_class, record.provider_ref)
                if row is None:
                    raise RuntimeError(f"{name} record {record.provider_class} {record.provider_ref} vanished")
        ticket_id = row["id"]
        locked = await repo.lock_ticket(conn, ticket_id)
        assert locked is not None
        if created:
            summary.imported += 1
        elif linked:
            summary.linked += 1
        else:
            summary.updated += 1
            status_events, defer = await _reconcile_status(conn, name, locked, record, summary)
            events += status_events
            if defer:  # keep the last seen remote status so the change is looked at again later
                seen.pop("remote_status", None)
        events += await _mirror_notes(conn, name, ticket_id, record, summary)
        if not created:
            await repo.remote_seen(conn, ticket_id, seen, url)
    await notify_committed(conn, events)
    return ticket_id, created


async def _link_by_marker(conn: asyncpg.Connection, name: str, record: ProviderRecord, url: str | None,
                          seen: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    marker = record.payload.get("marker") if isinstance(record.payload, dict) else None
    if not marker:
        return None, False
    ticket_id = await repo.create_by_marker(conn, name, str(marker))
    if ticket_id is None:
        return None, False
    linked = await repo.link_remote(conn, ticket_id, name, record.provider_ref, record.provider_class, url,
                                    {**seen, "marker": marker})
    if linked is None:
        return None, False
    await repo.settle_create(conn, ticket_id)
    await audit(conn, actor=sync_actor(name), action="provider_ticket_linked", category="ticket",
                target_type="ticket", target_id=ticket_id, ticket_id=ticket_id,
                details={"provider": name, "provider_ref": record.provider_ref,
                         "provider_class": record.provider_class, "marker": marker})
    log.info("remote ticket linked to its opsgate ticket by marker",
             extra={"ticket_id": ticket_id, "plugin": name, "provider_ref": record.provider_ref})
    return await repo.lock_ticket(conn, ticket_id), True


async def _import(conn: asyncpg.Connection, name: str, record: ProviderRecord, url: str | None,
                  seen: dict[str, Any], *, catch_up: bool) -> tuple[dict[str, Any] | None, list[int]]:
    status = record.status if record.status in vocab.STATUSES else "new"
    title = _title(record)
    actor = sync_actor(name)
    details = {"provider": name, "provider_ref": record.provider_ref, "provider_class": record.provider_class,
               "remote_status": record.remote_status, "title": title, "status": status, "catch_up": catch_up,
               "source": "provider_sync", "auto_assign": False}
    row = await repo.import_ticket(
        conn, title, _bounded(registry.plain_text(record.description or "")), _ticket_class(record), status,
        _priority(record), actor, name, record.provider_ref, record.provider_class, url, seen,
        f"Ticket imported from {name} {record.provider_class} {record.payload.get('ref') or record.provider_ref}: "
        f"{title}", details)
    if row is None:
        return None, []
    log.info("ticket imported from provider", extra={"ticket_id": row["id"], "plugin": name,
                                                     "provider_ref": record.provider_ref, "catch_up": catch_up})
    return row, list(row["event_ids"] or [])


async def _reconcile_status(conn: asyncpg.Connection, name: str, ticket: dict[str, Any], record: ProviderRecord,
                            summary: PullSummary) -> tuple[list[int], bool]:
    """Apply or record a changed remote status; returns (event ids, deferred)."""
    payload = ticket["provider_payload"] or {}
    if "remote_status" in payload and payload.get("remote_status") == record.remote_status:
        return [], False  # nothing changed remotely since opsgate last saw or set it
    outbound = await repo.open_count(conn, ticket["id"], name)
    decision = reconcile.decide(ticket["status"], record.status, agent_active=bool(ticket["agent_active"]),
                                outbound_pending=outbound > 0)
    actor = sync_actor(name)
    steer = vocab.steers(name)
    if decision.action == "apply":
        body = (f"Status changed from {ticket['status']} to {record.status} by {name} "
                f"(remote status {record.remote_status}).")
        details = {"from_status": ticket["status"], "to_status": record.status, "provider": name,
                   "remote_status": record.remote_status, "actor": actor, "reason": decision.reason}
        result = await tickets_repo.transition_ticket(
            conn, ticket["id"], ticket["status"], record.status, "status", body, actor, name, "internal", None,
            details, actor, "system", "ticket_status_changed", steer)
        if result is not None:
            summary.status_changes += 1
            log.info("ticket status changed by provider", extra={"ticket_id": ticket["id"], "plugin": name,
                                                                 "from": ticket["status"], "to": record.status})
            return list(result[2]), False
        return [], True  # changed under us: look again next time
    if decision.action == "conflict":
        body = (f"{name} reports status {record.remote_status} ({record.status}); opsgate kept "
                f"{ticket['status']} because {decision.reason}.")
        details = {"provider": name, "provider_conflict": True, "remote_status": record.remote_status,
                   "mapped_status": record.status, "local_status": ticket["status"], "reason": decision.reason}
        note = await tickets_repo.add_note(conn, ticket["id"], body, actor, name, "internal", None, details, steer,
                                           actor, None, None, actor)
        summary.conflicts += 1
        log.info("provider status conflict: %s", decision.reason, extra={"ticket_id": ticket["id"], "plugin": name})
        return list(note["event_ids"] or []) if note else [], False
    return [], decision.action == "defer"


async def _mirror_notes(conn: asyncpg.Connection, name: str, ticket_id: int, record: ProviderRecord,
                        summary: PullSummary) -> list[int]:
    notes = list(record.notes or ())
    if not notes:
        return []
    known = await repo.known_note_keys(conn, ticket_id, [n.key for n in notes])
    fresh = [n for n in notes if n.key not in known]
    if not fresh:
        return []
    candidates = await repo.echo_candidates(conn, ticket_id, name)
    pushed = [(c["id"], registry.text_hash(str((c["payload"] or {}).get("body") or "")),
               registry.log_of("internal" if c["op"] == "assignment" else (c["payload"] or {}).get("visibility")))
              for c in candidates]
    events: list[int] = []
    steer = vocab.steers(name)
    for note in fresh:
        body = _bounded(registry.plain_text(note.body or ""))
        where, digest = registry.log_of(note.visibility), registry.text_hash(body)
        match = next((p for p in pushed if p[1] == digest and p[2] == where), None)
        if match is not None:
            pushed.remove(match)
            if await repo.claim_note_key(conn, ticket_id, note.key, match[0]):
                await repo.set_echo(conn, match[0], note.key)
                summary.echoes += 1
            continue
        if not await repo.claim_note_key(conn, ticket_id, note.key):
            continue
        if not body:
            continue
        author = " ".join((note.author or name).split())[:200] or name
        visibility = note.visibility if note.visibility in vocab.VISIBILITIES else "internal"
        details = {"provider": name, "provider_note_key": note.key, "provider_created_at": _iso(note.created_at)}
        row = await tickets_repo.add_note(conn, ticket_id, body, author, name, visibility, None, details, steer,
                                          sync_actor(name), None, None, sync_actor(name))
        if row is None:
            continue
        await repo.set_note_key_note(conn, ticket_id, note.key, row["id"])
        summary.notes_added += 1
        events += list(row["event_ids"] or [])
    return events


# --- passes ---------------------------------------------------------------------------


async def pull_once(pool: asyncpg.Pool, settings: Settings, host: PluginHost, name: str, owner: str,
                    *, max_pages: int | None = None, wait_seconds: float = 0.0) -> PullSummary:
    """One pull pass for one provider: pages of changes since the stored cursor, upserted one by one.

    When another process holds the provider's pull lease, wait up to
    `wait_seconds` for it (the endpoints do) before reporting that nothing ran.
    """
    summary = PullSummary(provider=name)
    provider = registry.providers(host).get(name)
    if provider is None:
        return _skipped(summary, "no such provider object (local tickets have nothing to pull)")
    if not registry.capability(provider, "pull_sync"):
        return _skipped(summary, f"provider {name!r} does not pull changes")
    if not registry.configured(provider):
        return _skipped(summary, f"provider {name!r} is not configured")
    lease = settings.provider_claim_seconds
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        async with pool.acquire() as conn:
            state = await repo.take_lease(conn, name, owner, lease)
        if state is not None:
            break
        if time.monotonic() >= deadline:
            return _skipped(summary, "another process is pulling this provider")
        await asyncio.sleep(0.2)
    cursor = state["cursor"]
    summary.catch_up = cursor is None
    error: str | None = None
    try:
        for _ in range(max_pages or settings.provider_pull_max_pages):
            page = await call_plugin(name, "list_changed_since", provider.list_changed_since(cursor),
                                     timeout=settings.plugin_call_timeout)
            summary.pages += 1
            async with pool.acquire() as conn:
                for record in page.records:
                    await upsert_record(conn, name, provider, record, summary, catch_up=summary.catch_up)
                    summary.records += 1
                cursor = page.cursor
                if not await repo.save_cursor(conn, name, owner, cursor, len(page.records), lease):
                    log.warning("pull lease of %s lapsed; stopping this pass", name, extra={"plugin": name})
                    break
            sweeping = getattr(provider, "sweep_in_progress", None)
            more = page.more or (callable(sweeping) and bool(sweeping(cursor)))
            if not more:
                break
    except Exception as exc:  # recorded on the sync state and retried next interval
        error = registry.error_text(exc)
        summary.error = error
        log.warning("pull sync of %s failed: %s", name, error, extra={"plugin": name})
    finally:
        async with pool.acquire() as conn:
            await repo.release_lease(conn, name, owner, error)
    if summary.records:
        log.info("pull sync of %s: %d records, %d imported, %d notes", name, summary.records, summary.imported,
                 summary.notes_added, extra={"plugin": name})
    return summary


def _skipped(summary: PullSummary, reason: str) -> PullSummary:
    summary.ran = False
    summary.reason = reason
    return summary


async def sync_record(pool: asyncpg.Pool, settings: Settings, name: str, provider: TicketProvider,
                      provider_class: str, provider_ref: str) -> tuple[int | None, bool, PullSummary]:
    """Fetch one remote ticket and upsert it; (None, False, ...) when it does not exist remotely."""
    summary = PullSummary(provider=name)
    record = await call_plugin(name, "fetch", provider.fetch(provider_class, provider_ref),
                               timeout=settings.plugin_call_timeout)
    if record is None:
        return None, False, summary
    summary.records = 1
    async with pool.acquire() as conn:
        ticket_id, created = await upsert_record(conn, name, provider, record, summary)
    return ticket_id, created, summary
