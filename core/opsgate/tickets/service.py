"""The rules of tickets: validation, scoping, state changes and their timeline.

Every state change (create, status, assignment, request-info, user-response)
writes the change, a ticket note, an audit row and its domain events in one
statement (so in one transaction); the events' NOTIFY follows right after the
commit (see `opsgate.events.notifier` for why not inside it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from asyncpg import Connection

from opsgate.auth.principal import CLASSIFICATIONS, Principal, classification_rank
from opsgate.errors import Conflict, Forbidden, Invalid, NotFound
from opsgate.events.notifier import notify_committed
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets import listing, repo, vocab
from opsgate.tickets.schemas import (
    AgentResume,
    AssignmentChange,
    Attachment,
    AttachmentCreate,
    AutoAssignment,
    InfoRequest,
    Note,
    NoteCreate,
    StatusChange,
    Ticket,
    TicketChange,
    TicketContext,
    TicketCreate,
    TicketCreated,
    TicketDetail,
    TicketList,
    UserResponse,
)

log = logging.getLogger(__name__)

LOCAL_PROVIDER = "local"
MAX_TEXT_BYTES = 65536
CONTEXT_NOTES = 500
CONTEXT_ATTACHMENTS = 500
DETAIL_CHANGES = 50
IDEMPOTENCY_TTL_HOURS = 24.0  # the default of OPSGATE_IDEMPOTENCY_TTL_HOURS
IDEMPOTENCY_SWEEP_BATCH = 1000
CONTEXT_TASKS = 20
CONTEXT_LOG_TAIL = 4000  # characters of each task's output in the context
_SOURCE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_encode = msgspec.json.Encoder(order="deterministic")


# --- helpers -------------------------------------------------------------------


def _bounded(text: str, field: str, *, required: bool = False) -> str:
    if required and not text.strip():
        raise Invalid(field, "must not be empty")
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise Invalid(field, f"must be at most {MAX_TEXT_BYTES} bytes (64 KiB)")
    return text


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _request_hash(*parts: Any) -> str:
    return hashlib.sha256(_encode.encode(parts)).hexdigest()


def _idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise Invalid("Idempotency-Key", "must be 1 to 255 characters")
    return key


def _author_source(principal: Principal) -> str:
    return vocab.AGENT_SOURCE if principal.kind == "agent" else vocab.CONTROL_PLANE_SOURCE


def _who(principal: Principal, claimed: str | None) -> str:
    """The name shown on a note: an agent is always itself; others may name the human they act for."""
    if principal.kind == "agent":
        return principal.actor
    return _optional(claimed) or principal.actor


def external_url(host: PluginHost, row: dict[str, Any]) -> str | None:
    return _external_url(host.ticket_providers(), row)


def _external_url(providers: Mapping[str, Any], row: dict[str, Any]) -> str | None:
    if row.get("provider_url"):
        return row["provider_url"]
    if not row.get("provider_ref") or not row.get("provider_class"):
        return None
    provider = providers.get(row["provider"])
    if provider is None:
        return None
    try:
        return provider.external_url(row["provider_class"], row["provider_ref"])
    except Exception:  # a plugin bug must not break reading tickets
        log.exception("provider external_url failed", extra={"plugin": row["provider"]})
        return None


def to_ticket(host: PluginHost, row: dict[str, Any]) -> Ticket:
    row = {k: v for k, v in row.items() if k in _TICKET_FIELDS}
    row["external_url"] = external_url(host, row)
    return Ticket(**row)


def _list_tickets(host: PluginHost, rows: list[dict[str, Any]]) -> list[Ticket]:
    """Rows selected with listing.LIST_COLUMNS (exactly the Ticket fields but external_url)."""
    providers = host.ticket_providers()
    return [Ticket(**row, external_url=_external_url(providers, row)) for row in rows]


def to_detail(host: PluginHost, row: dict[str, Any], *, agent: dict[str, Any] | None = None,
              change_requests: list[dict[str, Any]] | None = None) -> TicketDetail:
    """The detail shape from a ticket row; `detail()` also reads its agent and gates."""
    fields = {k: v for k, v in row.items() if k in _DETAIL_FIELDS}
    fields["external_url"] = external_url(host, row)
    fields.setdefault("provider_payload", {})
    fields["agent"] = agent
    fields["change_requests"] = change_requests or []
    return TicketDetail(**fields)


async def detail(conn: Connection, principal: Principal, host: PluginHost, row: dict[str, Any]) -> TicketDetail:
    """The ticket (already checked visible) with its current agent and its newest change requests."""
    from opsgate.agents import service as agents
    from opsgate.changes import service as changes

    agent = await agents.ticket_agent(conn, principal, row["agent_id"])
    gates = await changes.ticket_changes(conn, principal, row["id"], DETAIL_CHANGES)
    return to_detail(host, row, agent=agent, change_requests=[msgspec.to_builtins(g) for g in gates])


def to_note(row: dict[str, Any], *, replay: bool = False) -> Note:
    return Note(id=row["id"], ticket_id=row["ticket_id"], kind=row["kind"], body=row["body"], author=row["author"],
                source=row["source"], visibility=row["visibility"], agent_id=row["agent_id"],
                details=row["details"], created_at=row["created_at"], steer=vocab.steers(row["source"]),
                idempotent_replay=replay)


def to_attachment(row: dict[str, Any]) -> Attachment:
    return Attachment(**{k: v for k, v in row.items() if k in _ATTACHMENT_FIELDS})


_TICKET_FIELDS = frozenset(Ticket.__struct_fields__) - {"external_url"}
_DETAIL_FIELDS = _TICKET_FIELDS | {"provider_payload"}
_ATTACHMENT_FIELDS = frozenset(Attachment.__struct_fields__)


async def visible_ticket(conn: Connection, principal: Principal, ticket_id: int, *,
                         lock: bool = False) -> dict[str, Any]:
    """The ticket row, or NotFound when it does not exist or is outside the caller's scope."""
    row = await (repo.lock_ticket(conn, ticket_id) if lock else repo.get_ticket(conn, ticket_id))
    if row is None or not principal.can_see(ticket_id=row["id"], classification=row["security_classification"],
                                            owning_group=row["owning_group"]):
        raise NotFound(f"ticket {ticket_id} not found")
    return row


def _check_group_in_scope(principal: Principal, group: str | None, field: str) -> None:
    if group is not None and principal.groups is not None and group not in principal.groups:
        raise Forbidden(f"{field} {group!r} is outside your assignment groups")


# --- create ----------------------------------------------------------------------


def _provider_choice(data: TicketCreate, settings: Settings, host: PluginHost) -> tuple[str, str, bool]:
    """(provider, provider_sync_status, is_local) for a new ticket."""
    requested = _optional(data.provider)
    if requested is not None:
        requested = requested.lower()
        known = {LOCAL_PROVIDER, settings.ticket_provider, *host.ticket_providers()}
        if requested not in known:
            raise Invalid("provider", f"unknown provider {requested!r}; must be one of {', '.join(sorted(known))}")
    target = requested or settings.ticket_provider or LOCAL_PROVIDER
    if not data.sync_provider or target == LOCAL_PROVIDER:
        return LOCAL_PROVIDER, "local_only", True
    # The provider outbox delivers it; the canonical write never waits on the provider.
    return target, "pending_create", False


def _auto_assignment(requested: bool) -> AutoAssignment:
    # Recorded with the creation; the decision itself is made right after (opsgate.intake.autoassign).
    if not requested:
        return AutoAssignment(requested=False, matched=False, reason="auto_assign not requested")
    return AutoAssignment(requested=True, matched=False, reason="decided by RACI auto-assignment after creation")


async def create_ticket(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                        data: TicketCreate, idempotency_key: str | None = None, *,
                        catch_up_sync: bool = False) -> TicketCreated:
    """Create a ticket; with `auto_assign`, RACI auto-assignment decides (never when `catch_up_sync`)."""
    key = _idempotency_key(idempotency_key)
    title = data.title.strip()
    if not title:
        raise Invalid("title", "must not be empty")
    description = _bounded(data.description, "description")
    ticket_class = vocab.ticket_class(data.ticket_class)
    status = vocab.status(data.status)
    priority = vocab.priority(data.priority)
    classification = data.security_classification.strip().lower()
    if classification not in CLASSIFICATIONS:
        raise Invalid("security_classification",
                      f"unknown classification {data.security_classification!r}; must be one of "
                      + ", ".join(CLASSIFICATIONS))
    if classification_rank(classification) > classification_rank(principal.max_classification):
        raise Forbidden(f"security_classification {classification!r} is above your clearance")
    owning_group = _optional(data.owning_group)
    _check_group_in_scope(principal, owning_group, "owning_group")
    provider, sync_status, local = _provider_choice(data, settings, host)
    created_by = _who(principal, data.created_by)
    auto = _auto_assignment(data.auto_assign)
    details = {
        "title": title, "ticket_class": ticket_class, "status": status, "priority": priority,
        "owning_group": owning_group, "security_classification": classification, "created_by": created_by,
        "provider": provider, "provider_sync_status": sync_status, "sync_provider": data.sync_provider,
        "auto_assign": data.auto_assign, "auto_assignment": msgspec.to_builtins(auto),
    }
    payload = {k: details[k] for k in ("status", "priority", "ticket_class", "provider", "provider_sync_status",
                                         "owning_group", "created_by", "auto_assign")}
    row = await repo.create_ticket(
        conn, title, description, ticket_class, status, priority, _optional(data.assignee),
        _optional(data.assignee_team), owning_group, classification, _optional(data.requester_name),
        _optional(data.requester_email), _optional(data.requester_phone), _optional(data.affected_user),
        _optional(data.affected_user_email), created_by, provider, sync_status, local,
        principal.actor, principal.actor_kind, f"Ticket created by {created_by}: {title}", details, payload,
        principal.actor, key, _request_hash("ticket_create", data) if key else None, settings.idempotency_ttl_hours,
    )
    if row is None:  # the key was used before
        first = await _replayed(conn, principal, "ticket_create", key, _request_hash("ticket_create", data),
                                settings.idempotency_ttl_hours)
        row = await visible_ticket(conn, principal, first["ticket_id"])
        if data.auto_assign:
            auto = await _recorded_auto_assignment(conn, row["id"])
        return _created(await detail(conn, principal, host, row), auto, replay=True)
    await notify_committed(conn, row["event_ids"])
    log.info("ticket created", extra={"ticket_id": row["id"], "status": status, "provider": provider})
    if data.auto_assign:
        from opsgate.intake.autoassign import auto_assign_created_ticket

        auto = await auto_assign_created_ticket(conn, principal, settings, host, row["id"],
                                                catch_up_sync=catch_up_sync)
        row = await repo.get_ticket(conn, row["id"]) or row
        return _created(await detail(conn, principal, host, row), auto, replay=False)
    # Created just now by this statement: no agent and no change request can refer to it yet.
    return _created(to_detail(host, row), auto, replay=False)


async def _recorded_auto_assignment(conn: Connection, ticket_id: int) -> AutoAssignment:
    """A replay answers with the decision the first request recorded (opsgate.intake keeps every one)."""
    from opsgate.intake.autoassign import recorded_auto_assignment

    recorded = await recorded_auto_assignment(conn, ticket_id)
    if recorded is not None:
        return recorded
    return AutoAssignment(requested=True, matched=False,
                          reason="idempotent replay: no auto-assignment decision is recorded for this ticket "
                                 "(the first request may still be deciding)")


def _created(shown: TicketDetail, auto: AutoAssignment, *, replay: bool) -> TicketCreated:
    return TicketCreated(**msgspec.structs.asdict(shown), auto_assignment=auto, idempotent_replay=replay)


async def _replayed(conn: Connection, principal: Principal, scope: str, key: str | None,
                    request_hash: str, ttl_hours: float) -> dict[str, Any]:
    first = await repo.idempotency_key(conn, principal.actor, scope, key or "", ttl_hours)
    if first is None:  # only when the key expired between the insert and this read
        raise Conflict("Idempotency-Key is in use; retry")
    if first["request_hash"] != request_hash:
        raise Conflict("Idempotency-Key was already used with a different request body")
    return first


async def expire_idempotency_keys(conn: Connection, ttl_hours: float, batch: int = IDEMPOTENCY_SWEEP_BATCH) -> int:
    """Delete up to `batch` idempotency keys older than `ttl_hours` (the periodic sweeper); returns how many.

    Lookups already ignore expired keys and a create/note reusing one takes it
    over, so this only keeps the table small.
    """
    return await repo.delete_expired_idempotency_keys(conn, ttl_hours, batch)


# --- read ------------------------------------------------------------------------


async def list_tickets(conn: Connection, principal: Principal, host: PluginHost, *, status: str | None,
                       priority: str | None, assignee: str | None, agent_only: bool, provider: str | None,
                       q: str | None, limit: int, offset: int) -> TicketList:
    statuses = tuple(dict.fromkeys(vocab.status(s, "status") for s in _csv(status)))
    priorities = tuple(dict.fromkeys(vocab.priority(p, "priority") for p in _csv(priority)))
    if q is not None and len(q) > 200:
        raise Invalid("q", "must be at most 200 characters")
    filters = listing.TicketFilters(
        statuses=statuses, priorities=priorities, assignee=_optional(assignee), agent_only=agent_only,
        provider=_optional(provider), q=_optional(q))
    rows, total, exact = await repo.list_tickets(conn, listing.build(filters, principal, limit, offset))
    return TicketList(tickets=_list_tickets(host, rows), total=total, total_exact=exact,
                      limit=limit, offset=offset)


def _csv(value: str | None) -> list[str]:
    if value is None:
        return []
    return [part for part in (p.strip() for p in value.split(",")) if part]


async def get_ticket(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int) -> TicketDetail:
    return await detail(conn, principal, host, await visible_ticket(conn, principal, ticket_id))


async def context(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int) -> TicketContext:
    from opsgate.access import repo as access_repo
    from opsgate.access import service as access
    from opsgate.agents import service as agents

    row = await visible_ticket(conn, principal, ticket_id)
    ticket = await detail(conn, principal, host, row)
    notes = await repo.list_notes(conn, ticket_id, CONTEXT_NOTES)
    attachments = await repo.list_attachments(conn, ticket_id, CONTEXT_ATTACHMENTS)
    tasks = await agents.ticket_tasks(conn, principal, ticket_id, limit=CONTEXT_TASKS, tail_chars=CONTEXT_LOG_TAIL)
    access_rows = await access_repo.list_for_ticket(conn, ticket_id, access.LIST_LIMIT)
    related: list[Ticket] = []
    if row["requester_email"] and principal.kind != "agent":
        statement, params = listing.related(principal, ticket_id, row["requester_email"])
        related = _list_tickets(host, await repo.fetch_all(conn, statement, params))
    # postmortems, knowledge_articles, workflows and skills have no domain yet: always empty.
    return TicketContext(ticket=ticket, notes=[to_note(n) for n in notes],
                         attachments=[to_attachment(a) for a in attachments],
                         change_requests=ticket.change_requests, tasks=tasks, postmortems=[],
                         related_tickets=related, knowledge_articles=[], workflows=[], skills=[],
                         access_requests=[msgspec.to_builtins(access.to_access_request(r)) for r in access_rows])


# --- notes and attachments -------------------------------------------------------


def _note_source(principal: Principal, source: str | None) -> str:
    if source is None:
        return vocab.AGENT_SOURCE if principal.kind == "agent" else "dashboard"
    value = source.strip().lower()
    if not value or not value[0].isalpha() or not set(value) <= _SOURCE_CHARS or len(value) > 64:
        raise Invalid("source", "must be a lowercase name (letters, digits, '_', '.', '-'), e.g. dashboard or agent")
    if principal.kind == "agent" and value != vocab.AGENT_SOURCE:
        raise Invalid("source", "an agent token may only write notes with source 'agent'")
    return value


async def add_note(conn: Connection, principal: Principal, ticket_id: int, data: NoteCreate,
                   idempotency_key: str | None = None, *, idempotency_ttl_hours: float = IDEMPOTENCY_TTL_HOURS) -> Note:
    key = _idempotency_key(idempotency_key)
    body = _bounded(data.body, "body", required=True)
    visibility = vocab.visibility(data.visibility)
    source = _note_source(principal, data.source)
    await visible_ticket(conn, principal, ticket_id)
    author = _who(principal, data.author)
    request_hash = _request_hash("ticket_note", ticket_id, data) if key else None
    steer = vocab.steers(source)
    row = await repo.add_note(conn, ticket_id, body, author, source, visibility, principal.agent_id, data.details,
                              steer, principal.actor, key, request_hash, principal.actor, idempotency_ttl_hours)
    if row is None:
        first = await _replayed(conn, principal, "ticket_note", key, _request_hash("ticket_note", ticket_id, data),
                                idempotency_ttl_hours)
        note = await repo.get_note(conn, first["note_id"])
        if note is None:
            raise Conflict("Idempotency-Key is in use; retry")
        return to_note(note, replay=True)
    await notify_committed(conn, row["event_ids"])
    return to_note(row)


async def add_attachment(conn: Connection, principal: Principal, ticket_id: int,
                         data: AttachmentCreate) -> Attachment:
    filename = data.filename.strip()
    if not filename:
        raise Invalid("filename", "must not be empty")
    await visible_ticket(conn, principal, ticket_id)
    row = await repo.add_attachment(
        conn, ticket_id, principal.actor, data.note_id, filename, data.content_type.strip() or "application/octet-stream",
        data.size_bytes, _optional(data.storage_ref), data.sha256.lower() if data.sha256 else None, data.metadata,
        principal.actor_kind, principal.agent_id)
    if row is None:
        raise Invalid("note_id", f"note {data.note_id} is not a note of ticket {ticket_id}")
    await notify_committed(conn, row["event_ids"])
    return to_attachment(row)


# --- state changes -----------------------------------------------------------------


# Status changes that end the work on a ticket: its credential leases are revoked with the change.
LEASE_ENDING_STATUSES = frozenset({"resolved", "closed", "cancelled", "rejected"})

# Runs inside the transition's transaction with (ticket after, note); returns extra TicketChange fields.
AfterTransition = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


async def _transition(conn: Connection, principal: Principal, host: PluginHost, row: dict[str, Any], *,
                      to_status: str, note_kind: str, body: str, author: str, source: str, visibility: str,
                      details: dict[str, Any], action: str, after: AfterTransition | None = None) -> TicketChange:
    """The status write (one statement); with `after`, that and the follow-up share one transaction."""
    args = (row["id"], row["status"], to_status, note_kind, body, author, source, visibility,
            principal.agent_id, details, principal.actor, principal.actor_kind, action, vocab.steers(source))
    extra: dict[str, Any] = {}
    if after is None:
        result = await repo.transition_ticket(conn, *args)
    else:
        async with conn.transaction():
            result = await repo.transition_ticket(conn, *args)
            if result is not None:
                extra = await after(result[0], result[1])
    if result is None:
        raise Conflict(f"ticket {row['id']} changed status concurrently (it was {row['status']!r}); reload and retry")
    ticket, note, event_ids = result
    await notify_committed(conn, event_ids)
    log.info("ticket %s", action, extra={"ticket_id": row["id"], "from": row["status"], "to": to_status})
    return TicketChange(ticket=await detail(conn, principal, host, ticket), note=to_note(note),
                        previous_status=row["status"], changed={"status": {"from": row["status"], "to": to_status}},
                        **extra)


async def change_status(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int,
                        data: StatusChange) -> TicketChange:
    to_status = vocab.status(data.status)
    expected = vocab.status(data.expected_status, "expected_status") if data.expected_status else None
    row = await visible_ticket(conn, principal, ticket_id)
    current = row["status"]
    if expected is not None and current != expected:
        raise Conflict(f"ticket {ticket_id} is {current!r}, not the expected {expected!r}")
    if current in vocab.FINAL_STATUSES:
        raise Conflict(f"ticket {ticket_id} is {current}; its status can no longer change")
    if current == to_status:
        raise Conflict(f"ticket {ticket_id} is already {current}")
    who = _who(principal, data.actor)
    reason = data.reason.strip()
    body = f"Status changed from {current} to {to_status} by {who}." + (f"\nReason: {reason}" if reason else "")
    details = {"from_status": current, "to_status": to_status, "reason": reason or None, "actor": who,
               "close_provider": data.close_provider, "provider": row["provider"],
               "provider_ref": row["provider_ref"]}
    after = None
    if to_status in LEASE_ENDING_STATUSES:
        async def after(ticket: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
            # Only the leases: an agent closes its own ticket while still running, so it is not stopped here.
            from opsgate.leases import service as leases

            revoked = await leases.revoke_ticket_leases(conn, ticket_id, f"ticket_{to_status}",
                                                        actor=principal.actor)
            return {"leases_revoked": revoked}
    return await _transition(conn, principal, host, row, to_status=to_status, note_kind="status", body=body,
                             author=who, source=_author_source(principal), visibility="internal", details=details,
                             action="ticket_status_changed", after=after)


async def request_info(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int,
                       data: InfoRequest) -> TicketChange:
    question = _bounded(data.question, "question", required=True)
    row = await visible_ticket(conn, principal, ticket_id)
    if row["status"] in vocab.FINAL_STATUSES or row["status"] == "resolved":
        raise Conflict(f"ticket {ticket_id} is {row['status']}; reopen it before asking the requester")
    who = _who(principal, data.requested_by)
    details = {"requested_by": who, "contact_method": _optional(data.contact_method),
               "recipient": _optional(data.recipient) or row["requester_email"], "context": _optional(data.context),
               "status_before": row["status"]}
    return await _transition(conn, principal, host, row, to_status="awaiting_user_response",
                             note_kind="request_info", body=question, author=who, source=_author_source(principal),
                             visibility="user", details=details, action="ticket_info_requested")


async def user_response(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int,
                        data: UserResponse) -> TicketChange:
    if principal.kind == "agent":
        raise Forbidden("an agent cannot answer for the requester")
    answer = _bounded(data.response, "response", required=True)
    row = await visible_ticket(conn, principal, ticket_id)
    if row["status"] != "awaiting_user_response":
        raise Conflict(f"ticket {ticket_id} is {row['status']}, not awaiting a user response")
    restored = row["previous_status"]
    if restored is None or restored == "awaiting_user_response" or restored in vocab.FINAL_STATUSES:
        restored = "in_progress"
    responder = _optional(data.responder_name) or _optional(data.responder_email) or "requester"
    details = {"responder_name": _optional(data.responder_name), "responder_email": _optional(data.responder_email),
               "resume_agent": data.resume_agent, "restored_status": restored, "recorded_by": principal.actor,
               "agent_id": row["agent_id"]}
    async def after(ticket: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
        return {"agent_resume": await _resume_agent(conn, principal, ticket, note, requested=data.resume_agent)}

    return await _transition(conn, principal, host, row, to_status=restored, note_kind="user_response", body=answer,
                             author=responder, source="user-response", visibility="user", details=details,
                             action="ticket_user_response", after=after)


async def _resume_agent(conn: Connection, principal: Principal, ticket: dict[str, Any], note: dict[str, Any], *,
                        requested: bool) -> AgentResume:
    """Deliver a requester's answer to the ticket's agent exactly once (inside the user-response transaction).

    The answer note steers (source `user-response`), so it always becomes one
    steering event per live agent (`UNIQUE (agent_id, note_id)`: the NOTIFY relay
    and the runner's backfill add no second one). A task still active reads it from
    its steering inbox; a waiting or ended agent also gets a continuation task
    whose prompt points at that note instead of repeating it.
    """
    from opsgate.agents import repo as agents_repo
    from opsgate.agents import service as agents
    from opsgate.agents.vocab import ACTIVE_TASK_STATUSES
    from opsgate.steering import service as steering

    agent_id = ticket["agent_id"]
    if not requested or agent_id is None:
        reason = "resume_agent is false" if not requested else "the ticket has no agent"
        return AgentResume(requested=requested, action="none", agent_id=agent_id, reason=reason)
    latest = await agents_repo.latest_task(conn, agent_id)
    if latest is not None and latest["status"] in ACTIVE_TASK_STATUSES:
        steered = await steering.relay_note(conn, note["id"])
        return AgentResume(requested=True, action="steered", agent_id=agent_id,
                           steering_event_ids=[r["id"] for r in steered if r["agent_id"] == agent_id],
                           reason=f"task {latest['id']} is {latest['status']}; the answer is delivered to it "
                                  "as a steering event")
    base = latest["prompt"] if latest is not None else None
    prompt = None
    if base:
        prompt = (f"{base}\n\nThe requester answered your question: ticket note #{note['id']}, also in your "
                  "steering inbox (AGENT_STEERING.md, agent_steering_inbox.json). Read it there, then continue "
                  "this task; your earlier work is in this directory.")
    try:
        task = await agents.queue_continuation(conn, agent_id, principal=principal, prompt=prompt,
                                               reason=f"user response (note {note['id']})")
    except (Conflict, NotFound) as exc:
        return AgentResume(requested=True, action="not_resumed", agent_id=agent_id, reason=exc.detail)
    steered = await steering.relay_note(conn, note["id"])
    return AgentResume(requested=True, action="resumed", agent_id=agent_id, task_id=task.id,
                       steering_event_ids=[r["id"] for r in steered if r["agent_id"] == agent_id],
                       reason=f"continuation task {task.id} queued")


_ASSIGN_FIELDS = ("assignee", "assignee_team", "owning_group", "priority")


async def change_assignment(conn: Connection, principal: Principal, host: PluginHost, ticket_id: int,
                            data: AssignmentChange) -> TicketChange:
    given: dict[str, Any] = {}
    for field in _ASSIGN_FIELDS:
        value = getattr(data, field)
        if value is msgspec.UNSET:
            continue
        if field == "priority":
            if value is None:
                raise Invalid("priority", "must be P1-P4 or 1-4")
            given[field] = vocab.priority(value)
        else:
            given[field] = _optional(value)
    if not given:
        raise Invalid("body", "give at least one of assignee, assignee_team, owning_group, priority")
    if "owning_group" in given:
        _check_group_in_scope(principal, given["owning_group"], "owning_group")
    who = _who(principal, data.actor)
    reason = data.reason.strip()
    async with conn.transaction():
        row = await visible_ticket(conn, principal, ticket_id, lock=True)
        if row["status"] in vocab.FINAL_STATUSES:
            raise Conflict(f"ticket {ticket_id} is {row['status']}; it can no longer be reassigned")
        changed = {f: {"from": row[f], "to": v} for f, v in given.items() if row[f] != v}
        lines = [f"{f}: {c['from'] or '-'} -> {c['to'] or '-'}" for f, c in changed.items()] or ["no field changed"]
        body = f"Assignment updated by {who}: " + "; ".join(lines) + "."
        if data.escalation_tier:
            body += f"\nEscalation tier: {data.escalation_tier}"
        if reason:
            body += f"\nReason: {reason}"
        details = {"changed": changed, "escalation_tier": _optional(data.escalation_tier), "reason": reason or None,
                   "actor": who}
        result = await repo.assign_ticket(
            conn, ticket_id,
            "assignee" in given, given.get("assignee"), "assignee_team" in given, given.get("assignee_team"),
            "owning_group" in given, given.get("owning_group"), "priority" in given, given.get("priority"),
            body, who, _author_source(principal), principal.agent_id, details, principal.actor,
            principal.actor_kind)
    if result is None:  # cannot happen under the row lock
        raise NotFound(f"ticket {ticket_id} not found")
    ticket, note, event_ids = result
    await notify_committed(conn, event_ids)
    log.info("ticket assignment changed", extra={"ticket_id": ticket_id, "fields": sorted(changed)})
    return TicketChange(ticket=await detail(conn, principal, host, ticket), note=to_note(note),
                        previous_status=row["status"], changed=changed)
