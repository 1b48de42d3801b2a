"""`ItopProvider`: the `TicketProvider` for Combodo iTop (UserRequest and Incident).

- create: `core/create` with `ITOP_DEFAULT_ORG_ID`/`ITOP_DEFAULT_CALLER_ID`
  (missing -> `ItopConfigError` naming the variable), impact/urgency from the
  opsgate priority, the title trimmed to 255 characters and the opsgate
  marker as the last paragraph of the description (`find_by_marker` searches
  it with OQL `LIKE`). A create whose reply is lost is looked up by marker once
  before the error is raised.
- fetch/list_changed_since: records with both case logs as notes;
  `provider_ref` is the iTop id (a `R-000123` ref is accepted too).
- add_note: `public_log` (visibility user/public) or `private_log` (internal)
  via `add_item` in text format.
- set_status: only stimuli, never a written `status` (see `_STRATEGY` below).

Every write carries a `comment` ("opsgate: ...") recorded in iTop's history.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from opsgate.protocols import ChangePage, ProviderRecord, ProviderTicket

from opsgate_provider_itop import cursor as cursors
from opsgate_provider_itop import mapping
from opsgate_provider_itop.client import ItopClient, ItopObject, Key, oql_quote
from opsgate_provider_itop.errors import (
    ItopConfigError,
    ItopError,
    ItopLifecycleError,
    ItopNotFound,
    ItopTransportError,
    ItopUsageError,
)
from opsgate_provider_itop.settings import ItopSettings

log = logging.getLogger(__name__)

#: Attributes read for a record (valid on UserRequest and Incident alike).
RECORD_FIELDS = (
    "id", "ref", "title", "description", "status", "operational_status", "priority", "impact", "urgency",
    "org_id", "org_name", "caller_id", "caller_id_friendlyname", "team_id", "team_name", "agent_id",
    "agent_id_friendlyname", "service_id", "start_date", "last_update", "resolution_date", "close_date",
    "solution", "public_log", "private_log",
)
STATE_FIELDS = ("id", "ref", "status", "team_id", "agent_id", "service_id")
_PAYLOAD_KEYS = ("ref", "org_id", "org_name", "caller_id", "caller_id_friendlyname", "team_id", "team_name",
                 "agent_id", "agent_id_friendlyname", "service_id", "impact", "urgency", "operational_status",
                 "start_date", "resolution_date", "close_date")
_VISIBILITY = {"user": "public_log", "public": "public_log", "internal": "private_log", "private": "private_log"}
_DONE = {"resolved", "closed"}
_RESOLVING = {"resolved": "assistance", "closed": "assistance", "cancelled": "other", "rejected": "other"}
_TERMINAL = ("closed", "cancelled", "rejected")  # closed in iTop after resolving


def _empty_key(value: Any) -> bool:
    return str(value or "0") in ("", "0")


class ItopProvider:
    """Mirror canonical tickets in iTop. Constructing it does no I/O and never fails."""

    name = "itop"
    ticket_classes: Sequence[str] = ("UserRequest", "Incident")
    capabilities: Mapping[str, bool] = {"case_log": True, "attachments": False, "pull_sync": True, "close": True}

    def __init__(self, settings: ItopSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.client = ItopClient(settings, transport=transport)
        self._zone: ZoneInfo | None = None

    def __repr__(self) -> str:
        return f"ItopProvider(url={self.settings.app_root!r}, auth={self.settings.auth_mode!r})"

    @property
    def sync_interval_seconds(self) -> int:
        """How often the core should pull changes (`ITOP_SYNC_INTERVAL_SECONDS`)."""
        return self.settings.sync_interval_seconds

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()

    # --- helpers ----------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        if self._zone is None:
            try:
                self._zone = ZoneInfo(self.settings.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ItopConfigError("ITOP_TIMEZONE", f"unknown time zone {self.settings.timezone!r}") from exc
        return self._zone

    def _require_connection(self, operation: str) -> None:
        missing = self.settings.missing()
        if missing:
            raise ItopConfigError(missing[0], "needed to talk to iTop" + (
                f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""), operation=operation)

    def _class(self, name: str | None, operation: str) -> str:
        cls = mapping.itop_class(name)
        if cls is None:
            raise ItopUsageError(f"iTop provider handles UserRequest and Incident, not {name!r}", operation=operation)
        return cls

    @staticmethod
    def _key(provider_ref: str) -> Key:
        ref = str(provider_ref).strip()
        return int(ref) if ref.isdigit() else {"ref": ref}

    def _record(self, obj: ItopObject) -> ProviderRecord:
        f = obj.fields
        raw_status = str(f.get("status") or "") or None
        return ProviderRecord(
            provider_class=obj.cls,
            provider_ref=obj.key,
            title=str(f.get("title") or ""),
            description=mapping.description_text(str(f.get("description") or "")),
            status=mapping.status_from_itop(raw_status),
            remote_status=raw_status,
            priority=mapping.priority_from_itop(f.get("priority")),
            url=self.external_url(obj.cls, obj.key),
            updated_at=mapping.parse_date(f.get("last_update"), self.zone),
            notes=mapping.notes_from(f, self.zone),
            payload={
                **{k: f[k] for k in _PAYLOAD_KEYS if k in f},
                "marker": mapping.marker_in(str(f.get("description") or "")),
                "last_update": f.get("last_update", ""),
            },
        )

    async def _get_one(self, cls: str, provider_ref: str, fields: Sequence[str]) -> ItopObject | None:
        result = await self.client.get(cls, self._key(provider_ref), fields)
        return result.objects[0] if result.objects else None

    # --- TicketProvider -----------------------------------------------------

    def configured(self) -> bool:
        """URL and credentials are present (creating tickets also needs the default org and caller)."""
        return not self.settings.missing()

    def external_url(self, provider_class: str, provider_ref: str) -> str | None:
        """The back-office page of the object: `<root>pages/UI.php?operation=details&class=..&id=..`."""
        ref = str(provider_ref or "").strip()
        if not self.settings.url or not ref.isdigit() or not provider_class:
            return None
        query = urlencode({"operation": "details", "class": provider_class, "id": ref})
        return f"{self.settings.app_root}pages/UI.php?{query}"

    async def create(self, ticket: ProviderTicket) -> ProviderRecord:
        """Create a UserRequest or Incident; raise when configuration or iTop refuses."""
        operation = "create"
        self._require_connection(operation)
        cls = self._class(ticket.provider_class or ticket.ticket_class, operation)
        s = self.settings
        if not s.default_org_id:
            raise ItopConfigError("ITOP_DEFAULT_ORG_ID", f"iTop needs org_id to create a {cls}", operation=operation)
        if not s.default_caller_id:
            raise ItopConfigError("ITOP_DEFAULT_CALLER_ID", f"iTop needs caller_id (a Person id) to create a {cls}",
                                  operation=operation)
        title = mapping.trim_title(ticket.title)
        if not title:
            raise ItopUsageError("a ticket needs a title", operation=operation)
        impact, urgency = mapping.priority_to_itop(ticket.priority)
        fields: dict[str, Any] = {
            "org_id": s.default_org_id,
            "caller_id": s.default_caller_id,
            "title": title,
            "description": mapping.description_html(ticket.description or ticket.title, ticket.marker),
            "impact": impact,
            "urgency": urgency,
        }
        if s.default_service_id:
            fields["service_id"] = s.default_service_id
        try:
            obj = await self.client.create(cls, fields, f"opsgate: create ticket {ticket.id}", RECORD_FIELDS)
        except ItopTransportError as exc:
            if not ticket.marker:
                raise
            log.warning("itop create of ticket %s lost its reply (%s); looking it up by marker", ticket.id, exc.message)
            try:
                found = await self.find_by_marker(cls, ticket.marker)
            except ItopError:
                found = None
            if found is None:
                raise
            log.info("itop create of ticket %s committed as %s::%s (found by marker)", ticket.id, cls,
                     found.provider_ref)
            return found
        log.info("itop created %s::%s (%s) for ticket %s", obj.cls, obj.key, obj.fields.get("ref", ""), ticket.id)
        return self._record(obj)

    async def find_by_marker(self, ticket_class: str, marker: str) -> ProviderRecord | None:
        """The ticket whose description carries `marker` (the oldest if a retry created two)."""
        if not marker:
            return None
        self._require_connection("find_by_marker")
        cls = mapping.itop_class(ticket_class)
        token = mapping.marker_token(marker)
        for candidate in ([cls] if cls else list(self.ticket_classes)):
            oql = f"SELECT {candidate} WHERE description LIKE {oql_quote('%' + token + '%')}"
            result = await self.client.get(candidate, oql, RECORD_FIELDS)
            hits = [o for o in result.objects if mapping.marker_in(str(o.fields.get("description") or "")) == marker]
            if hits:
                hits.sort(key=lambda o: int(o.key) if o.key.isdigit() else 0)
                if len(hits) > 1:
                    log.warning("itop has %d %s tickets with marker %s; using %s", len(hits), candidate, marker,
                                hits[0].key)
                return self._record(hits[0])
        return None

    async def fetch(self, provider_class: str, provider_ref: str) -> ProviderRecord | None:
        """One ticket with its case-log entries, or None."""
        self._require_connection("fetch")
        obj = await self._get_one(self._class(provider_class, "fetch"), provider_ref, RECORD_FIELDS)
        return None if obj is None else self._record(obj)

    async def list_changed_since(self, cursor: str | None) -> ChangePage:
        """One page of tickets changed since the cursor's watermark (None: everything).

        Returns records, or an empty list with the cursor of a finished sweep.
        While `sweep_in_progress(page.cursor)` is true, more pages are ready now.
        """
        self._require_connection("list_changed_since")
        state = cursors.decode(cursor)
        overlap = timedelta(seconds=max(0, self.settings.sync_overlap_seconds))
        since_local = None if state.since is None else mapping.format_date(state.since - overlap, self.zone)
        seen = set(state.seen)
        classes = list(self.ticket_classes)
        while True:
            cls = classes[min(state.cls, len(classes) - 1)]
            size = max(1, self.settings.page_size)
            result = await self.client.list_changed_since(cls, since_local, RECORD_FIELDS, limit=size,
                                                          page=state.page)
            records = [self._record(obj) for obj in result.objects]
            fresh = [r for r in records if self._seen_key(r) not in seen]
            high = max([r.updated_at for r in records if r.updated_at] + ([state.high] if state.high else []),
                       default=None)
            marks = self._prune([*state.fresh, *(self._seen_key(r) for r in records)], high, overlap)
            if state.page * size < result.found and result.objects:
                state = cursors.SyncCursor(since=state.since, high=high, cls=state.cls, page=state.page + 1,
                                           seen=state.seen, fresh=marks)
            elif state.cls + 1 < len(classes):
                state = cursors.SyncCursor(since=state.since, high=high, cls=state.cls + 1, page=1,
                                           seen=state.seen, fresh=marks)
            else:
                state = cursors.SyncCursor(since=high or state.since, seen=marks)
            if fresh or not state.in_sweep:
                log.debug("itop changed since %s: %d records", since_local, len(fresh))
                return ChangePage(records=fresh, cursor=cursors.encode(state), more=state.in_sweep)

    @staticmethod
    def sweep_in_progress(cursor: str | None) -> bool:
        """True when `list_changed_since(cursor)` has more pages ready now (not in the protocol)."""
        return cursors.decode(cursor).in_sweep

    async def list_all_changed_since(self, cursor: str | None) -> ChangePage:
        """Every record of a whole sweep in one page (not in the protocol; for small instances and tests)."""
        records: list[ProviderRecord] = []
        while True:
            page = await self.list_changed_since(cursor)
            records.extend(page.records)
            cursor = page.cursor
            if not self.sweep_in_progress(cursor):
                return ChangePage(records=records, cursor=cursor)

    @staticmethod
    def _seen_key(record: ProviderRecord) -> str:
        """`Class::id#fingerprint@last_update`: what was reported, and as of which change.

        iTop's `last_update` has one-second resolution, so a ticket changed
        twice within the second it was read keeps the same `last_update`; the
        fingerprint of its content (status, title, description, priority and
        case-log entries) makes such a change count as new.
        """
        stamp = record.updated_at.isoformat() if record.updated_at else ""
        basis = "\x00".join((record.title, record.description, record.remote_status or "", record.priority or "",
                              *(n.key for n in record.notes)))
        digest = hashlib.sha256(basis.encode("utf-8")).hexdigest()[:12]
        return f"{record.provider_class}::{record.provider_ref}#{digest}@{stamp}"

    @staticmethod
    def _prune(marks: list[str], high: datetime | None, overlap: timedelta) -> tuple[str, ...]:
        """Keep the marks inside the overlap window below `high` (at most SEEN_MAX, newest first)."""
        if high is None:
            return ()
        floor = high - overlap
        kept: dict[str, datetime] = {}
        for mark in marks:
            stamp = mark.rsplit("@", 1)[-1]
            try:
                when = datetime.fromisoformat(stamp)
            except ValueError:
                continue
            if when >= floor:
                kept[mark] = when
        newest = sorted(kept, key=lambda m: kept[m], reverse=True)[: cursors.SEEN_MAX]
        return tuple(newest)

    async def add_note(self, provider_class: str, provider_ref: str, body: str, visibility: str) -> None:
        """Append one text entry: user/public -> public_log, internal/private -> private_log."""
        self._require_connection("add_note")
        log_code = _VISIBILITY.get((visibility or "").lower())
        if log_code is None:
            raise ItopUsageError(f"unknown note visibility {visibility!r} (user, public, internal)",
                                 operation="add_note")
        if not body.strip():
            raise ItopUsageError("an empty note cannot be added", operation="add_note")
        cls = self._class(provider_class, "add_note")
        await self.client.append_case_log(cls, self._key(provider_ref), log_code, body, "opsgate: add note", "id")
        log.info("itop %s::%s note added to %s", cls, provider_ref, log_code)

    async def set_status(self, provider_class: str, provider_ref: str, status: str, reason: str, *,
                         close: bool) -> ProviderRecord:
        """Move the ticket with stimuli towards the opsgate status; return the record as it ends up.

        resolved/cancelled/rejected: assign if needed (ticket's team/agent, else
        ITOP_DEFAULT_TEAM_ID/AGENT_ID; `ev_autoresolve` when neither is known),
        then `ev_resolve` with solution = reason; `closed`, `cancelled` and
        `rejected` then `ev_close` (opsgate `resolved` leaves the iTop ticket resolved, not closed; the
        core calls this only when the caller asked for `close_provider`). A UserRequest waiting for approval is rejected with
        `ev_reject` for opsgate `rejected`, and refused otherwise (opsgate never
        approves on someone's behalf). assigned/in_progress: `ev_assign`, or
        `ev_reopen` from resolved. awaiting_user_response/blocked/awaiting_access:
        assign, then `ev_pending` with pending_reason = reason.
        pending_approval: `ev_wait_for_approval` from new. A closed ticket
        cannot move (iTop has no reopen from closed).
        """
        operation = "set_status"
        self._require_connection(operation)
        cls = self._class(provider_class, operation)
        key = self._key(provider_ref)
        obj = await self._get_one(cls, provider_ref, STATE_FIELDS)
        if obj is None:
            raise ItopNotFound(f"{cls} {provider_ref} does not exist", operation=operation)
        move = _Mover(self, cls, key, obj, status, reason)
        if status in _RESOLVING:
            if status == "rejected" and move.state == "waiting_for_approval":
                await move.fire("ev_reject", {})
            else:
                await move.resolve(_RESOLVING[status])
                if status in _TERMINAL and move.state == "resolved":
                    await move.fire("ev_close", {})
        elif status in ("assigned", "in_progress"):
            await move.assign()
        elif status in ("awaiting_user_response", "blocked", "awaiting_access"):
            await move.pending()
        elif status == "pending_approval":
            if move.state == "new" and cls == "UserRequest":
                await move.fire("ev_wait_for_approval", {})
            elif move.state != "waiting_for_approval":
                raise move.refuse()
        elif status == "new":
            if move.state == "rejected":
                await move.fire("ev_reopen", {})
            elif mapping.status_from_itop(move.state) != "new":
                raise move.refuse()
        else:
            raise ItopUsageError(f"unknown opsgate status {status!r}", operation=operation)
        record = await self.fetch(cls, str(obj.key))
        if record is None:
            raise ItopNotFound(f"{cls} {provider_ref} disappeared", operation=operation)
        return record

    async def health(self) -> Mapping[str, Any]:
        """`{"ok": bool, ...}` from `list_operations` (proves URL, login and REST profile); no secrets."""
        s = self.settings
        report: dict[str, Any] = {"provider": self.name, **s.public(),
                                  "can_create": bool(s.default_org_id and s.default_caller_id)}
        if not self.configured():
            return {"ok": False, "configured": False, "missing": s.missing(), **report}
        try:
            operations = await self.client.list_operations()
        except ItopError as exc:
            return {"ok": False, "configured": True, "error": exc.message, "code": exc.code,
                    "kind": type(exc).__name__, **report}
        return {"ok": True, "configured": True, "operations": len(operations), **report}


class _Mover:
    """Applies stimuli to one ticket, tracking its state between calls."""

    def __init__(self, provider: ItopProvider, cls: str, key: Key, obj: ItopObject, status: str, reason: str):
        self.p = provider
        self.cls = cls
        self.key = key
        self.fields = dict(obj.fields)
        self.state = str(obj.fields.get("status") or "")
        self.target = status
        self.reason = (reason or "").strip()
        self.comment = f"opsgate: set status {status}" + (f": {self.reason[:200]}" if self.reason else "")

    def refuse(self) -> ItopLifecycleError:
        return ItopLifecycleError(f"{self.cls} {self.fields.get('ref', self.key)} is {self.state!r}; "
                                  f"it cannot be moved to opsgate status {self.target!r}", operation="set_status")

    async def fire(self, stimulus: str, fields: Mapping[str, Any]) -> None:
        obj = await self.p.client.apply_stimulus(self.cls, self.key, stimulus, fields, self.comment, STATE_FIELDS)
        log.info("itop %s::%s %s: %s -> %s", self.cls, obj.key, stimulus, self.state, obj.fields.get("status"))
        self.fields.update(obj.fields)
        self.state = str(obj.fields.get("status") or "")

    def _team_agent(self) -> tuple[str, str] | None:
        s = self.p.settings
        team = self.fields.get("team_id") if not _empty_key(self.fields.get("team_id")) else s.default_team_id
        agent = self.fields.get("agent_id") if not _empty_key(self.fields.get("agent_id")) else s.default_agent_id
        return (str(team), str(agent)) if team and agent else None

    def _assignment(self) -> dict[str, Any]:
        pair = self._team_agent()
        if pair is None:
            missing = "ITOP_DEFAULT_TEAM_ID" if not self.p.settings.default_team_id else "ITOP_DEFAULT_AGENT_ID"
            raise ItopConfigError(missing, f"{self.cls} {self.fields.get('ref', self.key)} has no team/agent "
                                           "and iTop needs both to assign it", operation="set_status")
        return {"team_id": pair[0], "agent_id": pair[1]}

    async def assign(self) -> None:
        if self.state in ("assigned", "escalated_ttr"):
            return
        if self.state == "resolved":
            await self.fire("ev_reopen", {})
            return
        if self.state == "rejected":
            await self.fire("ev_reopen", {})
        if self.state in ("new", "escalated_tto", "approved", "pending"):
            await self.fire("ev_assign", self._assignment())
            return
        raise self.refuse()

    async def pending(self) -> None:
        if self.state == "pending":
            return
        await self.assign()
        await self.fire("ev_pending", {"pending_reason": self.reason or "Waiting for the requester."})

    def _solution(self, resolution_code: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"solution": self.reason or "Resolved by opsgate.",
                                  "resolution_code": resolution_code}
        service = self.fields.get("service_id")
        if _empty_key(service):
            service = self.p.settings.default_service_id
        if service and not _empty_key(service):
            fields["service_id"] = str(service)
        return fields

    async def resolve(self, resolution_code: str) -> None:
        if self.state in _DONE:
            return
        if self.state == "waiting_for_approval":
            raise self.refuse()
        if self.state == "rejected":
            await self.fire("ev_reopen", {})
        if self.state in ("new", "escalated_tto", "approved", "pending"):
            if self._team_agent() is None and self.state != "escalated_tto":
                await self.fire("ev_autoresolve", self._solution(resolution_code))
                return
            await self.fire("ev_assign", self._assignment())
        if self.state in ("assigned", "escalated_ttr"):
            await self.fire("ev_resolve", self._solution(resolution_code))
            return
        raise self.refuse()
