"""The rules of service-desk intake: RACI administration, classification, clarification, submit.

Routing is decided by the platform, not by the caller: a submitted request is
classified against the enabled RACI rules (`opsgate.intake.classifier`) and
the ticket is created through `opsgate.tickets.service.create_ticket` (the one
way to create a ticket) in the owning group of the matched rule, even when
that group is outside the submitter's own assignment groups. The ticket, its
classification note, its attachment metadata (all through the tickets service),
the approval gate (`opsgate.changes.service.create_gate`) and the intake session
are written in one transaction; auto-assignment (`opsgate.intake.autoassign`)
follows in its own.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from asyncpg import Connection

from opsgate.audit import repo as audit
from opsgate.auth.principal import CLASSIFICATIONS, Principal, classification_rank
from opsgate.errors import Conflict, Invalid, NotFound
from opsgate.events import repo as events
from opsgate.intake import autoassign, classifier, repo
from opsgate.intake.schemas import (
    Approval,
    AutoAssignDecision,
    CandidateOut,
    Clarification,
    ClarifyRequest,
    Classification,
    ClassifyRequest,
    GroupCreate,
    GroupUpdate,
    IntakeSession,
    QuestionOut,
    Raci,
    RaciConfig,
    RaciGroup,
    RaciRule,
    RuleCreate,
    RuleUpdate,
    SessionList,
    SubmitRequest,
    SubmitResult,
)
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets import repo as tickets_repo
from opsgate.tickets import service as tickets
from opsgate.tickets import vocab
from opsgate.tickets.schemas import Attachment, AttachmentCreate, NoteCreate, TicketCreate

log = logging.getLogger(__name__)

RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
MAX_TEXT_BYTES = 65536
RELATED_SCAN = 200
RELATED_LIMIT = 5
NOTE_SOURCE = "intake"
_INTENT = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ANSWER_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SESSION_FIELDS = frozenset(IntakeSession.__struct_fields__)


# --- loading and conversions -------------------------------------------------------------


@dataclass(frozen=True)
class LoadedRule:
    """A rule row and the classifier's view of it."""

    row: dict[str, Any]
    view: classifier.RuleView


def _loaded(row: dict[str, Any]) -> LoadedRule:
    return LoadedRule(row=row, view=classifier.RuleView(
        id=row["id"], name=row["name"], intent=row["intent"], keywords=list(row["keywords"]),
        ticket_class=row["ticket_class"], assignment_group=row["assignment_group"]))


async def load_routing(conn: Connection) -> tuple[list[LoadedRule], LoadedRule]:
    """The enabled rules and the `general` fallback; Conflict when the fallback is missing or disabled."""
    rules = [_loaded(r) for r in await repo.list_rules(conn, enabled_only=True)]
    fallback = next((r for r in rules if r.row["name"] == classifier.FALLBACK_RULE), None)
    if fallback is None:
        raise Conflict(f"no enabled {classifier.FALLBACK_RULE!r} fallback rule; restore it in the RACI rules")
    return [r for r in rules if r is not fallback], fallback


def to_group(row: dict[str, Any]) -> RaciGroup:
    """A group row as its response shape."""
    return RaciGroup(**row)


def to_rule(row: dict[str, Any]) -> RaciRule:
    """A rule row as its response shape."""
    return RaciRule(**row)


def to_session(row: dict[str, Any]) -> IntakeSession:
    """A session row as its response shape."""
    return IntakeSession(**{k: v for k, v in row.items() if k in _SESSION_FIELDS})


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None


def _name(value: str, field: str) -> str:
    name = " ".join(value.split())
    if not name:
        raise Invalid(field, "must not be empty")
    return name


def _risk(value: str, field: str = "risk_level") -> str:
    risk = value.strip().lower()
    if risk not in RISK_LEVELS:
        raise Invalid(field, f"unknown risk level {value!r}; must be one of {', '.join(RISK_LEVELS)}")
    return risk


def _classification_level(value: str, field: str = "security_classification") -> str:
    level = value.strip().lower()
    if level not in CLASSIFICATIONS:
        raise Invalid(field, f"unknown classification {value!r}; must be one of {', '.join(CLASSIFICATIONS)}")
    return level


def _names(values: list[str], field: str) -> list[str]:
    out: list[str] = []
    for value in values:
        name = " ".join(value.split())
        if not name:
            raise Invalid(field, "entries must not be empty")
        if name.lower() not in (o.lower() for o in out):
            out.append(name)
    return out


def _keywords(values: list[str], *, required: bool) -> list[str]:
    out: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for value in values:
        keyword = " ".join(value.split())
        if not keyword:
            raise Invalid("keywords", "entries must not be empty")
        toks = classifier.tokens(keyword)
        if not toks:
            raise Invalid("keywords", f"{keyword!r} has no letters or digits")
        if len(toks) > classifier.MAX_PHRASE_TOKENS:
            raise Invalid("keywords", f"{keyword!r} is longer than {classifier.MAX_PHRASE_TOKENS} words")
        if toks not in seen:
            seen.add(toks)
            out.append(keyword)
    if required and not out:
        raise Invalid("keywords", f"must list at least one word or phrase (only the {classifier.FALLBACK_RULE!r} "
                                  "fallback has none)")
    return out


async def _journal(conn: Connection, principal: Principal, action: str, target_type: str, target_id: int,
                   details: dict[str, Any], ticket_id: int | None = None) -> None:
    await audit.record(conn, actor=principal.actor, actor_kind=principal.actor_kind, action=action,
                       category="intake", target_type=target_type, target_id=target_id, ticket_id=ticket_id,
                       details=details)
    await events.emit(conn, action, actor=principal.actor, ticket_id=ticket_id, category="intake",
                      payload={**details, f"{target_type}_id": target_id})


# --- RACI administration -------------------------------------------------------------------


async def raci(conn: Connection) -> RaciConfig:
    """Every group and rule, enabled or not."""
    groups = [to_group(r) for r in await repo.list_groups(conn)]
    rules = [to_rule(r) for r in await repo.list_rules(conn)]
    return RaciConfig(groups=groups, rules=rules)


async def create_group(conn: Connection, principal: Principal, data: GroupCreate) -> RaciGroup:
    """Create a group with its audit row and event; Conflict on a duplicate name."""
    name = _name(data.name, "name")
    risk = _risk(data.risk_level)
    async with conn.transaction():
        row = await repo.insert_group(conn, name, data.description.strip(), _optional(data.default_assignee), risk,
                                      data.enabled, principal.actor)
        await _journal(conn, principal, "raci_group_created", "raci_group", row["id"],
                       {"name": name, "risk_level": risk, "enabled": data.enabled})
    log.info("RACI group created", extra={"group": name})
    return to_group(row)


async def _group_or_404(conn: Connection, group_id: int) -> dict[str, Any]:
    row = await repo.get_group(conn, group_id, lock=True)
    if row is None:
        raise NotFound(f"RACI group {group_id} not found")
    return row


async def _refuse_disabling_routed_group(conn: Connection, name: str) -> None:
    routed = await repo.enabled_rules_of_group(conn, name)
    if routed:
        raise Conflict(f"enabled rules still route to {name!r}: {', '.join(routed)}; re-route or disable them first")


async def update_group(conn: Connection, principal: Principal, group_id: int, data: GroupUpdate) -> RaciGroup:
    """Change the given fields; disabling is refused while enabled rules route to the group."""
    async with conn.transaction():
        row = await _group_or_404(conn, group_id)
        new = dict(row)
        if data.name is not msgspec.UNSET:
            new["name"] = _name(data.name, "name")
        if data.description is not msgspec.UNSET:
            new["description"] = data.description.strip()
        if data.default_assignee is not msgspec.UNSET:
            new["default_assignee"] = _optional(data.default_assignee)
        if data.risk_level is not msgspec.UNSET:
            new["risk_level"] = _risk(data.risk_level)
        if data.enabled is not msgspec.UNSET:
            new["enabled"] = data.enabled
        if row["enabled"] and not new["enabled"]:
            await _refuse_disabling_routed_group(conn, row["name"])
        updated = await repo.update_group(conn, group_id, new["name"], new["description"], new["default_assignee"],
                                          new["risk_level"], new["enabled"], principal.actor)
        assert updated is not None  # the row is locked
        changed = {k: {"from": row[k], "to": new[k]} for k in ("name", "description", "default_assignee",
                                                              "risk_level", "enabled") if row[k] != new[k]}
        await _journal(conn, principal, "raci_group_updated", "raci_group", group_id,
                       {"name": new["name"], "changed": changed})
    log.info("RACI group updated", extra={"group": new["name"], "fields": sorted(changed)})
    return to_group(updated)


async def delete_group(conn: Connection, principal: Principal, group_id: int) -> RaciGroup:
    """Disable a group (rows are never deleted, so history keeps its names)."""
    async with conn.transaction():
        row = await _group_or_404(conn, group_id)
        if not row["enabled"]:
            raise Conflict(f"RACI group {group_id} is already disabled")
        await _refuse_disabling_routed_group(conn, row["name"])
        updated = await repo.update_group(conn, group_id, row["name"], row["description"], row["default_assignee"],
                                          row["risk_level"], False, principal.actor)
        assert updated is not None
        await _journal(conn, principal, "raci_group_disabled", "raci_group", group_id, {"name": row["name"]})
    log.info("RACI group disabled", extra={"group": row["name"]})
    return to_group(updated)


async def _validated_rule(conn: Connection, v: dict[str, Any], *, fallback: bool) -> dict[str, Any]:
    """Normalised column values of a rule, or Invalid naming the first bad field."""
    intent = v["intent"].strip().lower()
    if not _INTENT.match(intent):
        raise Invalid("intent", "must be a lowercase identifier (letters, digits, '_'), e.g. phishing")
    group_name = _name(v["assignment_group"], "assignment_group")
    group = await repo.group_by_name(conn, group_name)
    if group is None:
        raise Invalid("assignment_group", f"names no RACI group: {group_name!r}")
    if v["enabled"] and not group["enabled"]:
        raise Invalid("assignment_group", f"RACI group {group['name']!r} is disabled")
    approval_action = _optional(v["approval_action"])
    if v["approval_required"] and approval_action is None:
        raise Invalid("approval_action", "is required when approval_required is true")
    if fallback and v["auto_assign_agent"]:
        raise Invalid("auto_assign_agent", f"the {classifier.FALLBACK_RULE!r} fallback never auto-assigns")
    prompt = v["auto_agent_prompt"].strip() if v["auto_agent_prompt"] else None
    return {
        "name": _name(v["name"], "name"),
        "intent": intent,
        "description": v["description"].strip(),
        "keywords": _keywords(v["keywords"], required=not fallback),
        "ticket_class": vocab.ticket_class(v["ticket_class"]),
        "priority": vocab.priority(v["priority"]),
        "assignment_group": group["name"],
        "responsible": _optional(v["responsible"]),
        "accountable": _optional(v["accountable"]),
        "consulted": _names(v["consulted"], "consulted"),
        "informed": _names(v["informed"], "informed"),
        "approval_required": v["approval_required"],
        "approval_action": approval_action,
        "risk_level": _risk(v["risk_level"]),
        "knowledge_tags": _names(v["knowledge_tags"], "knowledge_tags"),
        "auto_assign_agent": v["auto_assign_agent"],
        "auto_agent_model": _optional(v["auto_agent_model"]),
        "auto_agent_prompt": prompt or None,
        "security_classification": _classification_level(v["security_classification"]),
        "enabled": v["enabled"],
    }


async def create_rule(conn: Connection, principal: Principal, data: RuleCreate) -> RaciRule:
    """Create a rule; its group must exist (400) and names are unique (409)."""
    raw = msgspec.structs.asdict(data)
    fallback = _name(data.name, "name") == classifier.FALLBACK_RULE
    async with conn.transaction():
        values = await _validated_rule(conn, raw, fallback=fallback)
        row = await repo.insert_rule(conn, values, principal.actor)
        await _journal(conn, principal, "raci_rule_created", "raci_rule", row["id"], _rule_summary(row))
    log.info("RACI rule created", extra={"rule": row["name"]})
    return to_rule(row)


def _rule_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("name", "intent", "assignment_group", "ticket_class", "priority", "approval_required",
                                "auto_assign_agent", "enabled")}


async def _rule_or_404(conn: Connection, rule_id: int) -> dict[str, Any]:
    row = await repo.get_rule(conn, rule_id, lock=True)
    if row is None:
        raise NotFound(f"RACI rule {rule_id} not found")
    return row


async def update_rule(conn: Connection, principal: Principal, rule_id: int, data: RuleUpdate) -> RaciRule:
    """Change the given fields of a rule, re-validating the whole rule."""
    given = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    if not given:
        raise Invalid("body", "give at least one field to change")
    async with conn.transaction():
        row = await _rule_or_404(conn, rule_id)
        fallback = row["name"] == classifier.FALLBACK_RULE
        merged = {**row, **given}
        if fallback and _name(merged["name"], "name") != classifier.FALLBACK_RULE:
            raise Conflict(f"the {classifier.FALLBACK_RULE!r} fallback rule cannot be renamed")
        if fallback and not merged["enabled"]:
            raise Conflict(f"the {classifier.FALLBACK_RULE!r} fallback rule cannot be disabled")
        values = await _validated_rule(conn, merged, fallback=fallback)
        updated = await repo.update_rule(conn, rule_id, values, principal.actor)
        assert updated is not None  # the row is locked
        changed = sorted(k for k in values if values[k] != row[k])
        await _journal(conn, principal, "raci_rule_updated", "raci_rule", rule_id,
                       {**_rule_summary(updated), "changed": changed})
    log.info("RACI rule updated", extra={"rule": updated["name"], "fields": changed})
    return to_rule(updated)


async def delete_rule(conn: Connection, principal: Principal, rule_id: int) -> RaciRule:
    """Disable a rule (kept for the history of the sessions and tickets it routed)."""
    async with conn.transaction():
        row = await _rule_or_404(conn, rule_id)
        if row["name"] == classifier.FALLBACK_RULE:
            raise Conflict(f"the {classifier.FALLBACK_RULE!r} fallback rule cannot be disabled")
        if not row["enabled"]:
            raise Conflict(f"RACI rule {rule_id} is already disabled")
        updated = await repo.update_rule(conn, rule_id, {**row, "enabled": False}, principal.actor)
        assert updated is not None
        await _journal(conn, principal, "raci_rule_disabled", "raci_rule", rule_id, _rule_summary(updated))
    log.info("RACI rule disabled", extra={"rule": row["name"]})
    return to_rule(updated)


# --- classification --------------------------------------------------------------------------


def _request_text(title: str, message: str) -> tuple[str, str]:
    title = title.strip()
    if not title:
        raise Invalid("title", "must not be empty")
    if len(message.encode()) > MAX_TEXT_BYTES:
        raise Invalid("message", f"must be at most {MAX_TEXT_BYTES} bytes (64 KiB)")
    return title, message


def _answers(answers: dict[str, str]) -> dict[str, str]:
    for key in answers:
        if not _ANSWER_KEY.match(key):
            raise Invalid("answers", f"key {key!r} must be a lowercase identifier, e.g. sender")
    return {k: v.strip() for k, v in answers.items() if v.strip()}


async def _route(conn: Connection, settings: Settings, title: str, message: str, category: str | None,
                 answers: dict[str, str]) -> tuple[classifier.Outcome, dict[str, Any], list[LoadedRule]]:
    rules, fallback = await load_routing(conn)
    outcome = classifier.classify([r.view for r in rules], fallback.view, title, message, category,
                                  min_score=settings.intake_min_score,
                                  answers=classifier.routing_answers(answers))
    by_id = {r.row["id"]: r.row for r in rules}
    return outcome, by_id.get(outcome.rule_id, fallback.row), [*rules, fallback]


async def _related(conn: Connection, principal: Principal, host: PluginHost, rule: dict[str, Any],
                   outcome: classifier.Outcome, exclude: int | None) -> list:
    """Recent tickets of the routed group (in the caller's scope) sharing the matched keywords."""
    if not outcome.matched or principal.kind == "agent":
        return []
    groups = None if principal.groups is None else list(principal.groups)
    rows = await repo.related_tickets(conn, rule["assignment_group"], principal.allowed_classifications(), groups,
                                      exclude, RELATED_SCAN)
    wanted = [classifier.phrase(k) for k in outcome.matched_keywords]
    ranked = []
    for row in rows:
        text = classifier.Text(row["title"], row["description"])
        hits = sum(1 for k in wanted if text.has(k))
        if hits:
            ranked.append((hits, row))
    ranked.sort(key=lambda item: (-item[0], -item[1]["id"]))
    return [tickets.to_ticket(host, row) for _, row in ranked[:RELATED_LIMIT]]


async def _classification(conn: Connection, settings: Settings, outcome: classifier.Outcome, rule: dict[str, Any],
                          related: list) -> Classification:
    group = await repo.group_by_name(conn, rule["assignment_group"])
    return Classification(
        rule_id=rule["id"], rule_name=rule["name"], intent=rule["intent"], matched=outcome.matched,
        confidence=outcome.confidence, low_confidence=outcome.confidence < settings.intake_clarify_confidence,
        score=outcome.score, reason=outcome.reason, matched_keywords=outcome.matched_keywords,
        ticket_class=rule["ticket_class"], priority=rule["priority"], assignment_group=rule["assignment_group"],
        default_assignee=group["default_assignee"] if group else None,
        approval_required=rule["approval_required"], approval_action=rule["approval_action"],
        risk_level=rule["risk_level"], security_classification=rule["security_classification"],
        auto_assign_agent=rule["auto_assign_agent"] and outcome.matched,
        raci=Raci(responsible=rule["responsible"], accountable=rule["accountable"],
                  consulted=list(rule["consulted"]), informed=list(rule["informed"])),
        knowledge_tags=list(rule["knowledge_tags"]),
        candidates=[CandidateOut(**msgspec.structs.asdict(c)) for c in outcome.candidates],
        related_tickets=related,
        # Knowledge articles arrive with the learning domain; until then the tags are the pointer.
        related_knowledge=[],
    )


async def classify(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                   data: ClassifyRequest) -> Classification:
    """Where a request would be routed, with RACI, approval, related tickets and the reasons."""
    title, message = _request_text(data.title, data.message)
    outcome, rule, _ = await _route(conn, settings, title, message, data.category, {})
    related = await _related(conn, principal, host, rule, outcome, None)
    return await _classification(conn, settings, outcome, rule, related)


async def clarify(conn: Connection, settings: Settings, data: ClarifyRequest) -> Clarification:
    """Up to four questions when the routing is unsure or the routed team lacks facts it needs."""
    title, message = _request_text(data.title, data.message)
    answers = _answers(data.answers)
    category = data.category or answers.get("category")
    outcome, rule, rules = await _route(conn, settings, title, message, category, answers)
    low = outcome.confidence < settings.intake_clarify_confidence
    describe = {r.row["id"]: f"{r.row['description'] or r.row['intent']} ({r.row['assignment_group']})"
                for r in rules}
    missing = classifier.missing_facts(rule["intent"], title, message, answers)
    asked = classifier.questions(outcome, rule["intent"], title, message, answers, low, describe)
    return Clarification(needed=bool(asked), questions=[QuestionOut(key=q.key, question=q.question, reason=q.reason)
                                                        for q in asked],
                         missing_facts=[f.key for f in missing], confidence=outcome.confidence,
                         rule_name=rule["name"], intent=rule["intent"], assignment_group=rule["assignment_group"])


# --- submit ------------------------------------------------------------------------------------


def _description(message: str, answers: dict[str, str]) -> str:
    parts = [message.strip()] if message.strip() else []
    if answers:
        parts.append("Answers to clarification questions:\n" + "\n".join(f"- {k}: {v}" for k, v in answers.items()))
    text = "\n\n".join(parts)
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise Invalid("message", "message and answers together must be at most 64 KiB")
    return text


def _note_body(c: Classification) -> str:
    lines = [
        f"Intake classification: routed to {c.assignment_group} by rule {c.rule_name} "
        f"(intent {c.intent}, confidence {c.confidence:.2f}).",
        f"Matched: {', '.join(c.matched_keywords)}." if c.matched else f"Fallback: {c.reason}.",
        f"Ticket class {c.ticket_class}, priority {c.priority}, risk {c.risk_level}.",
        f"Approval required: {c.approval_action}." if c.approval_required else "No approval required.",
        f"RACI: R {c.raci.responsible or '-'}; A {c.raci.accountable or '-'}; "
        f"C {', '.join(c.raci.consulted) or '-'}; I {', '.join(c.raci.informed) or '-'}.",
    ]
    if c.knowledge_tags:
        lines.append(f"Knowledge tags: {', '.join(c.knowledge_tags)}.")
    return "\n".join(lines)


async def _open_gate(conn: Connection, writer: Principal, settings: Settings, rule: dict[str, Any],
                     ticket: dict[str, Any]) -> Approval:
    """A pending approval gate on the new ticket when the routed rule requires approval (inside a transaction)."""
    if not rule["approval_required"]:
        return Approval(required=False, action=None, status="not_required", change_request_id=None)
    from opsgate.changes.service import create_gate

    gate = await create_gate(
        conn, writer, settings, ticket=ticket, agent_id=None, kind="change", action=rule["approval_action"],
        target=ticket["title"], command="", risk=rule["risk_level"],
        reason=f"RACI rule {rule['name']} requires approval ({rule['approval_action']}) before this intake "
               "request is worked.",
        approval_policy={"requires_human": True, "source": "intake", "raci_rule": rule["name"]},
        expires_in_seconds=None)
    return Approval(required=True, action=rule["approval_action"], status="pending", change_request_id=gate["id"])


def _stored(c: Classification) -> dict[str, Any]:
    return msgspec.to_builtins(msgspec.structs.replace(c, related_tickets=[]))


async def _replay(conn: Connection, writer: Principal, host: PluginHost, ticket_id: int) -> SubmitResult:
    session = await repo.session_of_ticket(conn, ticket_id)
    if session is None:
        raise Conflict(f"Idempotency-Key was already used for ticket {ticket_id}, which was not created through "
                       "intake")
    ticket = await tickets.get_ticket(conn, writer, host, ticket_id)
    wanted = set(session["attachment_ids"])
    attachments = [tickets.to_attachment(a) for a in await tickets_repo.list_attachments(conn, ticket_id, 500)
                   if a["id"] in wanted]
    decision = session["auto_assignment"]
    auto = (msgspec.convert(decision, AutoAssignDecision) if decision is not None else
            AutoAssignDecision(requested=True, decision="pending", reason_code="pending",
                               reason="the first submission is still deciding"))
    return SubmitResult(
        session=to_session(session), ticket=ticket,
        classification=msgspec.convert(session["classification"], Classification), attachments=attachments,
        approval=Approval(required=session["approval_required"], action=session["approval_action"],
                          status=session["approval_status"], change_request_id=session["change_request_id"]),
        auto_assignment=auto, idempotent_replay=True)


async def submit(conn: Connection, principal: Principal, settings: Settings, host: PluginHost, data: SubmitRequest,
                 idempotency_key: str | None = None) -> SubmitResult:
    """Route a request and create its ticket, classification note, attachments, gate and session;
    then auto-assign when asked and allowed.

    The ticket, its note and attachments (through the tickets service), the
    gate, the session and their audit rows and events are one transaction, so a
    failed submit writes nothing; the auto-assignment decision is a second one.
    """
    title, message = _request_text(data.title, data.message)
    answers = _answers(data.answers)
    category = data.category or answers.get("category")
    priority = vocab.priority(data.priority) if data.priority is not None else None
    requested_level = (_classification_level(data.security_classification)
                       if data.security_classification is not None else None)
    description = _description(message, answers)
    outcome, rule, _ = await _route(conn, settings, title, message, category, answers)
    group = await repo.group_by_name(conn, rule["assignment_group"])
    level = rule["security_classification"]
    if requested_level is not None and classification_rank(requested_level) > classification_rank(level):
        level = requested_level  # a submitter may raise the rule's classification, never lower it
    # The platform routes: the ticket goes to the rule's group whatever the submitter's own scope.
    writer = msgspec.structs.replace(principal, groups=None, max_classification=CLASSIFICATIONS[-1])
    assignee = group["default_assignee"] if group else None
    ticket_data = TicketCreate(
        title=title, description=description, ticket_class=rule["ticket_class"],
        status="assigned" if assignee else "new", priority=priority or rule["priority"],
        created_by=data.created_by, assignee=assignee, assignee_team=rule["assignment_group"],
        owning_group=rule["assignment_group"], security_classification=level,
        requester_name=data.requester_name, requester_email=data.requester_email,
        requester_phone=data.requester_phone, affected_user=data.affected_user,
        affected_user_email=data.affected_user_email, sync_provider=data.sync_provider, auto_assign=False)
    async with conn.transaction():
        created = await tickets.create_ticket(conn, writer, settings, host, ticket_data, idempotency_key)
        if created.idempotent_replay:
            return await _replay(conn, writer, host, created.id)
        related = await _related(conn, principal, host, rule, outcome, created.id)
        classification = await _classification(conn, settings, outcome, rule, related)
        note = await tickets.add_note(conn, writer, created.id, NoteCreate(
            body=_note_body(classification), source=NOTE_SOURCE, visibility="internal",
            details={"intake": _stored(classification)}))
        attachments: list[Attachment] = []
        for item in data.attachments:
            attachments.append(await tickets.add_attachment(conn, writer, created.id, AttachmentCreate(
                filename=item.filename, content_type=item.content_type, size_bytes=item.size_bytes,
                storage_ref=item.storage_ref, sha256=item.sha256, note_id=note.id,
                metadata={**item.metadata, "source": "intake"})))
        ticket_row = await tickets.visible_ticket(conn, writer, created.id, lock=True)
        approval = await _open_gate(conn, writer, settings, rule, ticket_row)
        pending = None if data.auto_assign else msgspec.to_builtins(autoassign.not_requested())
        session = await repo.insert_session(
            conn, principal.actor, principal.actor_kind, title, message, category, _optional(data.requester_name),
            _optional(data.requester_email), answers, rule["id"], rule["name"], rule["intent"], outcome.matched,
            outcome.confidence, _stored(classification), created.id, note.id, [a.id for a in attachments],
            approval.required, approval.action, approval.status, approval.change_request_id, data.auto_assign,
            pending)
        await _journal(conn, principal, "intake_submitted", "intake_session", session["id"], {
            "rule_name": rule["name"], "intent": rule["intent"], "matched": outcome.matched,
            "confidence": outcome.confidence, "assignment_group": rule["assignment_group"],
            "approval_required": approval.required, "change_request_id": approval.change_request_id,
            "classification_note_id": note.id, "attachments": len(attachments)}, ticket_id=created.id)
    log.info("intake submitted", extra={"ticket_id": created.id, "rule": rule["name"], "matched": outcome.matched})
    if data.auto_assign:
        async with conn.transaction():
            decision = await autoassign.auto_assign(conn, writer, settings, host, created.id, outcome=outcome)
            session = await repo.set_session_auto_assignment(conn, session["id"], autoassign.decision_dict(decision))
    else:
        decision = autoassign.not_requested()
    ticket = await tickets.get_ticket(conn, writer, host, created.id)
    return SubmitResult(session=to_session(session), ticket=ticket, classification=classification,
                        attachments=attachments, approval=approval, auto_assignment=decision)


# --- sessions --------------------------------------------------------------------------------


async def list_sessions(conn: Connection, principal: Principal, *, ticket_id: int | None, limit: int,
                        offset: int) -> SessionList:
    """Intake sessions whose ticket is inside the caller's row scope, newest first."""
    groups = None if principal.groups is None else list(principal.groups)
    rows = await repo.list_sessions(conn, principal.allowed_classifications(), groups, ticket_id, limit, offset)
    return SessionList(sessions=[to_session(r) for r in rows], limit=limit, offset=offset)
