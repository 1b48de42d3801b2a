"""Outbound sync: deliver queued canonical changes to their provider, in order per ticket.

Rows of `provider_outbox` are written by the tickets statements in the same
transaction as the change (create, note, status with close_provider,
assignment). `Dispatcher.dispatch_once` leases the due head row of each
ticket's queue (`FOR UPDATE SKIP LOCKED`, so any number of processes may
dispatch), calls the provider outside any transaction, and records the result
on the row and on the ticket:

- create: `pending_create` until the remote ticket exists (`synced`), or
  `create_failed` once retries are exhausted, the provider is missing or not
  configured, or it refuses for good (`retryable = False`). A retry first
  looks the ticket up by the marker stored on the row, so a create whose
  reply was lost never makes a second remote ticket.
- note / assignment: a case-log entry (user/public visibility to the public
  log, internal to the private log). A retry first checks whether the entry
  already arrived, so a lost reply never makes a second entry.
- status: `set_status(..., close=True)`.

A ticket marked `pending_create` by a writer that did not queue its create
(e.g. an access request's child ticket) gets its create queued by the
dispatcher (checked at most once a minute per process).

Failures of a note/status/assignment after the retries set the ticket's
`provider_sync_status` to `error` (the next success sets it back to
`synced`); `provider_last_error` always holds the latest failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import asyncpg

from opsgate.audit.repo import record as audit
from opsgate.events.repo import emit
from opsgate.plugins import PluginHost, call_plugin
from opsgate.protocols import ProviderRecord, ProviderTicket, TicketProvider
from opsgate.providers import registry, repo
from opsgate.providers.schemas import DispatchSummary
from opsgate.settings import Settings

log = logging.getLogger(__name__)

ACTOR = "provider-outbox"
REPAIR_INTERVAL_SECONDS = 60.0


class _Permanent(Exception):
    """A delivery that cannot succeed by retrying (missing provider or settings, a conflict)."""

    retryable = False


def backoff(settings: Settings, attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: exponential from the base, capped."""
    base = max(0.0, settings.provider_retry_base_seconds)
    return min(settings.provider_retry_max_seconds, base * (2 ** max(0, attempts - 1)))


class Dispatcher:
    """Delivers outbox rows for one process; `owner` names its claims."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, host: PluginHost, owner: str) -> None:
        self.pool = pool
        self.settings = settings
        self.host = host
        self.owner = owner
        self._repaired_at: float | None = None

    async def _call(self, provider_name: str, op: str, awaitable: Any) -> Any:
        return await call_plugin(provider_name, op, awaitable, timeout=self.settings.plugin_call_timeout)

    # --- passes -------------------------------------------------------------------

    async def dispatch_once(self, *, ticket_id: int | None = None, limit: int | None = None) -> DispatchSummary:
        """Claim and deliver one batch of due head rows (of every ticket, or of one)."""
        summary = DispatchSummary()
        limit = limit or self.settings.provider_batch_size
        async with self.pool.acquire() as conn:
            if ticket_id is None and self._repair_due():
                queued = await repo.enqueue_missing_creates(conn, limit)
                for row in queued:
                    log.warning("queued a missing provider create", extra={"ticket_id": row["ticket_id"]})
            rows = await repo.claim_due(conn, self.owner, limit, self.settings.provider_claim_seconds, ticket_id)
        summary.claimed = len(rows)
        if not rows:
            return summary
        limit_parallel = asyncio.Semaphore(max(1, min(8, len(rows))))

        async def one(row: dict[str, Any]) -> str:
            async with limit_parallel:
                return await self.deliver(row)

        for outcome in await asyncio.gather(*(one(r) for r in rows)):
            setattr(summary, outcome, getattr(summary, outcome) + 1)
        return summary

    def _repair_due(self) -> bool:
        """Whether to look for pending_create tickets without a queued create (at most once a minute)."""
        now = time.monotonic()
        if self._repaired_at is not None and now - self._repaired_at < REPAIR_INTERVAL_SECONDS:
            return False
        self._repaired_at = now
        return True

    async def drain_ticket(self, ticket_id: int, *, max_rounds: int = 100) -> DispatchSummary:
        """Deliver every due row of one ticket now, in order (endpoints use it)."""
        total = DispatchSummary()
        for _ in range(max_rounds):
            step = await self.dispatch_once(ticket_id=ticket_id, limit=1)
            for field in DispatchSummary.__struct_fields__:
                setattr(total, field, getattr(total, field) + getattr(step, field))
            if step.claimed == 0 or step.delivered + step.skipped == 0:
                break
        return total

    # --- one row --------------------------------------------------------------------

    async def deliver(self, row: dict[str, Any]) -> str:
        """Deliver one claimed row; returns the DispatchSummary field to count it under."""
        name = row["provider"]
        async with self.pool.acquire() as conn:
            ticket = await repo.ticket_for_delivery(conn, row["ticket_id"])
        if ticket is None:  # the ticket is gone (its rows cascade); nothing to do
            return "lost"
        if ticket["provider"] != name:
            return await self._skip(row, f"ticket now belongs to provider {ticket['provider']!r}")
        provider = registry.providers(self.host).get(name)
        try:
            if provider is None:
                raise _Permanent(f"provider {name!r} is not installed or not enabled (OPSGATE_PLUGINS)")
            if not registry.configured(provider):
                missing = getattr(getattr(provider, "settings", None), "missing", None)
                detail = f" (missing: {', '.join(missing())})" if callable(missing) and missing() else ""
                raise _Permanent(f"provider {name!r} is not configured{detail}")
            result = await self._perform(row, ticket, provider)
        except asyncio.CancelledError:
            async with self.pool.acquire() as conn:
                await repo.release(conn, row["id"], self.owner)
            raise
        except Exception as exc:  # every failure is recorded on the row and the ticket
            return await self._failed(row, ticket, exc)
        if isinstance(result, str):
            return await self._skip(row, result)
        return await self._done(row, ticket, provider, result)

    async def _perform(self, row: dict[str, Any], ticket: dict[str, Any],
                       provider: TicketProvider) -> ProviderRecord | str | None:
        op = row["op"]
        if op == "create":
            return await self._create(row, ticket, provider)
        if not ticket["provider_ref"]:
            raise RuntimeError(f"ticket {ticket['id']} has no {row['provider']} record yet")
        cls = ticket["provider_class"] or ticket["ticket_class"]
        if op in ("note", "assignment"):
            return await self._note(row, ticket, provider, cls)
        if op == "status":
            if not registry.capability(provider, "close"):
                return f"provider {row['provider']!r} does not change remote statuses"
            payload = row["payload"]
            return await self._call(row["provider"], "set_status", provider.set_status(
                cls, ticket["provider_ref"], payload["status"], payload.get("reason") or "",
                close=bool(payload.get("close", True))))
        raise _Permanent(f"unknown outbox operation {op!r}")

    async def _create(self, row: dict[str, Any], ticket: dict[str, Any],
                      provider: TicketProvider) -> ProviderRecord | str:
        if ticket["provider_ref"]:
            return "the remote ticket already exists"
        name = row["provider"]
        marker = (row["payload"] or {}).get("marker") or ""
        ticket_class = ticket["provider_class"] or ticket["ticket_class"]
        found = None
        if marker and row["attempts"] > 0:  # an earlier attempt may have committed remotely
            found = await self._call(name, "find_by_marker", provider.find_by_marker(ticket_class, marker))
            if found is not None:
                log.info("provider create found by marker after a failed attempt",
                         extra={"ticket_id": ticket["id"], "plugin": name})
        if found is not None:
            return found
        return await self._call(name, "create", provider.create(ProviderTicket(
            id=ticket["id"], title=ticket["title"], description=ticket["description"], ticket_class=ticket_class,
            status=ticket["status"], priority=ticket["priority"], assignee=ticket["assignee"],
            assignee_team=ticket["assignee_team"], owning_group=ticket["owning_group"],
            requester_name=ticket["requester_name"], requester_email=ticket["requester_email"], marker=marker)))

    async def _note(self, row: dict[str, Any], ticket: dict[str, Any], provider: TicketProvider,
                    cls: str) -> str | None:
        name = row["provider"]
        if not registry.capability(provider, "case_log"):
            return f"provider {name!r} has no case log"
        payload = row["payload"] or {}
        body = str(payload.get("body") or "").strip()
        visibility = "internal" if row["op"] == "assignment" else str(payload.get("visibility") or "internal")
        if not body:
            return "empty note"
        if row["echo_key"] is not None:
            return None  # the inbound sync already saw this entry arrive
        if row["attempts"] > 0 and await self._already_there(row, ticket, provider, cls, body, visibility):
            return None
        await self._call(name, "add_note", provider.add_note(cls, ticket["provider_ref"], body, visibility))
        return None

    async def _already_there(self, row: dict[str, Any], ticket: dict[str, Any], provider: TicketProvider, cls: str,
                             body: str, visibility: str) -> bool:
        """After a failed attempt: did that attempt land anyway (more such entries remotely than we delivered)?"""
        record = await self._call(row["provider"], "fetch", provider.fetch(cls, ticket["provider_ref"]))
        if record is None:
            return False
        wanted, where = registry.text_hash(body), registry.log_of(visibility)
        remote = sum(1 for n in record.notes
                     if registry.log_of(n.visibility) == where and registry.text_hash(n.body) == wanted)
        async with self.pool.acquire() as conn:
            ours = await repo.outbox_for_ticket(conn, ticket["id"])
        delivered = sum(1 for o in ours
                        if o["id"] != row["id"] and o["provider"] == row["provider"] and o["status"] == "delivered"
                        and o["op"] in ("note", "assignment")
                        and registry.log_of("internal" if o["op"] == "assignment"
                                            else (o["payload"] or {}).get("visibility")) == where
                        and registry.text_hash(str((o["payload"] or {}).get("body") or "")) == wanted)
        if remote > delivered:
            log.info("provider note of an earlier attempt had arrived; not sending it again",
                     extra={"ticket_id": ticket["id"], "plugin": row["provider"], "outbox_id": row["id"]})
            return True
        return False

    # --- recording results ------------------------------------------------------------

    async def _skip(self, row: dict[str, Any], reason: str) -> str:
        async with self.pool.acquire() as conn:
            done = await repo.mark_delivered(conn, row["id"], self.owner, skipped=reason)
        log.info("provider outbox row skipped: %s", reason, extra={"ticket_id": row["ticket_id"],
                                                                   "outbox_id": row["id"]})
        return "skipped" if done is not None else "lost"

    async def _done(self, row: dict[str, Any], ticket: dict[str, Any], provider: TicketProvider,
                    record: ProviderRecord | None) -> str:
        name = row["provider"]
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                if row["op"] == "create":
                    assert record is not None
                    await self._link(conn, row, ticket, provider, record)
                    await emit(conn, "ticket_provider_synced", actor=ACTOR, ticket_id=ticket["id"],
                               category="ticket",
                               payload={"ticket_id": ticket["id"], "provider": name,
                                        "provider_ref": record.provider_ref, "provider_class": record.provider_class,
                                        "provider_sync_status": "synced"})
                else:
                    extra = registry.provider_payload(record.payload, record.remote_status) if record else {}
                    await repo.set_sync_state(conn, ticket["id"], "synced", None, extra)
                done = await repo.mark_delivered(conn, row["id"], self.owner)
                if done is None:  # the claim lapsed; roll back so the new claimant records it once
                    raise _ClaimLost()
        except _ClaimLost:
            log.warning("provider outbox claim lapsed before its result was recorded",
                        extra={"ticket_id": ticket["id"], "outbox_id": row["id"]})
            return "lost"
        except _Permanent as exc:
            return await self._failed(row, ticket, exc)
        log.info("provider %s delivered", row["op"], extra={"ticket_id": ticket["id"], "plugin": name,
                                                            "outbox_id": row["id"]})
        return "delivered"

    async def _link(self, conn: asyncpg.Connection, row: dict[str, Any], ticket: dict[str, Any],
                    provider: TicketProvider, record: ProviderRecord) -> None:
        name = row["provider"]
        try:
            url = record.url or provider.external_url(record.provider_class, record.provider_ref)
        except Exception:
            log.exception("provider external_url failed", extra={"plugin": name})
            url = record.url
        payload = {**registry.provider_payload(record.payload, record.remote_status),
                   "marker": (row["payload"] or {}).get("marker")}
        linked = await repo.link_remote(conn, ticket["id"], name, record.provider_ref, record.provider_class, url,
                                        payload)
        if linked is None:
            current = await repo.ticket_for_delivery(conn, ticket["id"])
            if current is None or (current["provider_ref"], current["provider_class"]) != (
                    record.provider_ref, record.provider_class):
                raise _Permanent(f"{name} record {record.provider_class} {record.provider_ref} is already linked "
                                 "to another opsgate ticket")
        await audit(conn, actor=ACTOR, action="provider_ticket_created", category="ticket", target_type="ticket",
                    target_id=ticket["id"], ticket_id=ticket["id"],
                    details={"provider": name, "provider_ref": record.provider_ref,
                             "provider_class": record.provider_class, "attempts": row["attempts"] + 1,
                             "marker": (row["payload"] or {}).get("marker")})

    async def _failed(self, row: dict[str, Any], ticket: dict[str, Any], exc: BaseException) -> str:
        name, op = row["provider"], row["op"]
        error = f"{op}: {registry.error_text(exc)}"
        attempts = row["attempts"] + 1
        retry = registry.is_retryable(exc) and attempts < self.settings.provider_retry_max_attempts
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                # The ticket row first, then the outbox row: the order every writer of both uses.
                if retry:
                    delay = backoff(self.settings, attempts)
                    await repo.set_sync_state(conn, ticket["id"], None, error)
                    done = await repo.mark_retry(conn, row["id"], self.owner, delay, error)
                else:
                    final = "create_failed" if op == "create" else "error"
                    await repo.set_sync_state(conn, ticket["id"], final, error)
                    done = await repo.mark_failed(conn, row["id"], self.owner, error)
                    await audit(conn, actor=ACTOR, action="provider_sync_failed", category="ticket", level="error",
                                target_type="ticket", target_id=ticket["id"], ticket_id=ticket["id"],
                                details={"provider": name, "op": op, "outbox_id": row["id"], "attempts": attempts,
                                         "error": error, "provider_sync_status": final})
                if done is None:
                    raise _ClaimLost()
        except _ClaimLost:
            return "lost"
        if retry:
            log.warning("provider %s failed (attempt %d), retrying in %.0fs: %s", op, attempts, delay, error,
                        extra={"ticket_id": ticket["id"], "plugin": name})
            return "retried"
        log.error("provider %s failed for good after %d attempt(s): %s", op, attempts, error,
                  extra={"ticket_id": ticket["id"], "plugin": name})
        return "failed"


class _ClaimLost(Exception):
    """Our lease on the row lapsed before the result was recorded."""
