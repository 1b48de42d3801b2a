"""The rules of approval gates: request, approve, reject, cancel, complete, expire.

Each transition is one compare-and-set UPDATE; its audit row, its domain event
and its ticket note are written in the same transaction, so the ticket
timeline shows the approval chain and nothing is half-recorded. A gate binds a
digest of exactly what was proposed (action, target, command, ticket id),
re-checked on completion and by executors (`require_approved_gate`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec
from asyncpg import Connection

from opsgate.audit import repo as audit
from opsgate.auth.principal import Principal
from opsgate.changes import repo
from opsgate.changes.schemas import (
    ChangeApprove,
    ChangeCancel,
    ChangeComplete,
    ChangeDecision,
    ChangeList,
    ChangeReject,
    ChangeRequest,
    ChangeRequestCreate,
    ChangeStats,
    ChangeStatus,
    PendingList,
)
from opsgate.errors import ApprovalRequired, Conflict, Forbidden, Invalid, NotFound
from opsgate.events import repo as events
from opsgate.events.repo import CHANNEL
from opsgate.leases.scope import credential_ref as check_credential_ref
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets.service import visible_ticket

log = logging.getLogger(__name__)

RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")
HIGH_RISK: frozenset[str] = frozenset({"high", "critical"})
APPROVE_HIGH = "changes:approve_high"
APPROVAL_MODES: tuple[str, ...] = ("manual_approval", "demo_auto_approval")
OPEN_STATUSES: frozenset[str] = frozenset({"pending", "approved"})
FINAL_TICKET_STATUSES: frozenset[str] = frozenset({"closed", "cancelled", "rejected"})
POLICY_FLAGS: tuple[str, ...] = ("requires_human", "auto_complete", "manual_completion_required")
MAX_POLICY_BYTES = 16384
SYSTEM_ACTOR = "system"
SUPERVISOR_ACTOR = "supervisor"
_encode = msgspec.json.Encoder(order="deterministic")
_CHANGE_FIELDS = frozenset(ChangeRequest.__struct_fields__) - {
    "status", "stored_status", "expired", "approval_gate", "access_request_id", "seconds_until_expiry",
    "waiting_seconds"}


# --- helpers ---------------------------------------------------------------------


def gate_digest(action: str, target: str, command: str, ticket_id: int) -> str:
    """`sha256:<hex>` of exactly what was proposed: action, target, command and ticket id."""
    payload = _encode.encode({"action": action, "command": command, "target": target, "ticket_id": ticket_id})
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def _effective(row: dict[str, Any]) -> str:
    return row.get("effective_status") or row["status"]


def to_change(row: dict[str, Any]) -> ChangeRequest:
    fields = {k: row[k] for k in _CHANGE_FIELDS}
    status = _effective(row)
    return ChangeRequest(**fields, status=status, stored_status=row["status"],
                         expired=status == "expired", approval_gate=True,
                         seconds_until_expiry=row.get("seconds_until_expiry"),
                         waiting_seconds=row.get("waiting_seconds"),
                         access_request_id=row.get("access_request_id"))


def _optional(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _scope(principal: Principal) -> tuple[list[str], list[str] | None, int | None]:
    """(allowed classifications, groups or None, forced ticket id) for list queries."""
    forced = principal.ticket_id if principal.kind == "agent" else None
    if principal.kind == "agent" and forced is None:
        forced = -1  # an agent token without a ticket sees no gates
    groups = None if principal.groups is None else list(principal.groups)
    return principal.allowed_classifications(), groups, forced


async def visible_change(conn: Connection, principal: Principal, change_id: int) -> dict[str, Any]:
    """The gate, or NotFound when it does not exist or its ticket is outside the caller's scope."""
    row = await repo.get_change(conn, change_id)
    if row is None or not principal.can_see(ticket_id=row["ticket_id"], classification=row["ticket_classification"],
                                            owning_group=row["ticket_owning_group"]):
        raise NotFound(f"change {change_id} not found")
    return row


async def _journal(conn: Connection, row: dict[str, Any], *, event: str, actor: str, actor_kind: str,
                   note: str, details: dict[str, Any], note_agent_id: int | None = None,
                   level: str = "info") -> int:
    """Audit row, domain event and ticket note of one gate transition (inside its transaction)."""
    body = {"change_id": row["id"], "ticket_id": row["ticket_id"], "agent_id": row["agent_id"],
            "kind": row["kind"], "action": row["action"], "target": row["target"], "risk_level": row["risk_level"],
            "status": row["status"], "digest": row["digest"], "approval_gate": True, **details}
    note_id = await repo.add_gate_note(conn, row["ticket_id"], "access" if row["kind"] == "access" else "change",
                                       note, actor, note_agent_id, body, CHANNEL)
    await audit.record(conn, actor=actor, actor_kind=actor_kind, action=event, category="change", level=level,
                       target_type="change_request", target_id=row["id"], ticket_id=row["ticket_id"],
                       agent_id=row["agent_id"], details={**body, "note_id": note_id})
    await events.emit(conn, event, actor=actor, ticket_id=row["ticket_id"], agent_id=row["agent_id"],
                      category="change", level=level, payload={**body, "note_id": note_id})
    return note_id


def _conflict(row: dict[str, Any], verb: str, needs: str) -> Conflict:
    status = _effective(row)
    if status == "expired":
        return Conflict(f"change {row['id']} expired at {row['expires_at'].isoformat()}; it can no longer be "
                        f"{verb}; file a new request")
    return Conflict(f"change {row['id']} is {status}; only a {needs} gate can be {verb}")


async def _reload(conn: Connection, change_id: int) -> dict[str, Any]:
    row = await repo.get_change(conn, change_id)
    if row is None:
        raise NotFound(f"change {change_id} not found")
    return row


def _policy(policy: dict[str, Any]) -> dict[str, Any]:
    if len(_encode.encode(policy)) > MAX_POLICY_BYTES:
        raise Invalid("approval_policy", f"must be at most {MAX_POLICY_BYTES} bytes of JSON")
    for flag in POLICY_FLAGS:
        if flag in policy and not isinstance(policy[flag], bool):
            raise Invalid(f"approval_policy.{flag}", "must be true or false")
    return policy


def _expiry(requested: int | None, settings: Settings) -> int:
    if requested is None:
        return settings.change_default_expiry_seconds
    if requested < 1:
        raise Invalid("expires_in_seconds", "must be at least 1")
    if requested > settings.change_max_expiry_seconds:
        raise Invalid("expires_in_seconds", f"must be at most {settings.change_max_expiry_seconds} "
                                            "(OPSGATE_CHANGE_MAX_EXPIRY_SECONDS)")
    return requested


def risk_level(value: str, field: str = "risk_level") -> str:
    level = value.strip().lower()
    if level not in RISK_LEVELS:
        raise Invalid(field, f"unknown risk level {value!r}; must be one of {', '.join(RISK_LEVELS)}")
    return level


def _requester_agent(principal: Principal, agent_id: int | None) -> int | None:
    if principal.kind != "agent":
        return agent_id
    if agent_id is not None and agent_id != principal.agent_id:
        raise Forbidden(f"{principal.actor} may only request gates for itself, not agent {agent_id}")
    return principal.agent_id


# --- request ---------------------------------------------------------------------


async def create_gate(conn: Connection, principal: Principal, settings: Settings, *, ticket: dict[str, Any],
                      agent_id: int | None, kind: str, action: str, target: str, command: str, reason: str,
                      risk: str, approval_policy: dict[str, Any], expires_in_seconds: int | None,
                      note: str | None = None, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Insert a pending gate with its audit row, event and ticket note; call inside a transaction."""
    if ticket["status"] in FINAL_TICKET_STATUSES:
        raise Conflict(f"ticket {ticket['id']} is {ticket['status']}; no new gates can be requested on it")
    expires = _expiry(expires_in_seconds, settings)
    spawned_by = await repo.agent_spawner(conn, agent_id) if agent_id is not None else None
    digest = gate_digest(action, target, command, ticket["id"])
    row = await repo.insert_change(
        conn, ticket["id"], agent_id, kind, action, target, command, reason, risk, _policy(approval_policy), digest,
        principal.actor, principal.name, principal.actor_kind, spawned_by, expires)
    text = note.replace("{id}", str(row["id"])) if note else (f"Approval requested by {principal.actor} (change #{row['id']}, risk {risk}): {action} on "
                    f"{target}." + (f"\nCommand: {command}" if command else "")
                    + (f"\nReason: {reason}" if reason else "")
                    + f"\nExpires at {row['expires_at'].isoformat()}.")
    await _journal(conn, row, event="change_requested", actor=principal.actor, actor_kind=principal.actor_kind,
                   note=text, note_agent_id=principal.agent_id,
                   details={"requested_by": principal.actor, "spawned_by": spawned_by,
                            "expires_at": row["expires_at"].isoformat(), "approval_policy": row["approval_policy"],
                            **(details or {})})
    log.info("change requested", extra={"change_id": row["id"], "ticket_id": ticket["id"], "agent_id": agent_id,
                                        "risk_level": risk})
    return row


async def request_change(conn: Connection, principal: Principal, settings: Settings,
                         data: ChangeRequestCreate) -> ChangeRequest:
    action = data.action.strip()
    target = data.target.strip()
    if not action:
        raise Invalid("action", "must not be empty")
    if not target:
        raise Invalid("target", "must not be empty")
    risk = risk_level(data.risk_level)
    agent_id = _requester_agent(principal, data.agent_id)
    async with conn.transaction():
        ticket = await visible_ticket(conn, principal, data.ticket_id, lock=True)
        row = await create_gate(conn, principal, settings, ticket=ticket, agent_id=agent_id, kind="change",
                                action=action, target=target, command=data.command, reason=data.reason.strip(),
                                risk=risk, approval_policy=data.approval_policy,
                                expires_in_seconds=data.expires_in_seconds)
    return to_change(row)


# --- reads -----------------------------------------------------------------------


def _statuses(value: str | None) -> list[str]:
    allowed = ("pending", "approved", "rejected", "expired", "cancelled", "completed", "failed")
    found = []
    for part in (p.strip().lower() for p in (value or "").split(",")):
        if not part:
            continue
        if part not in allowed:
            raise Invalid("status", f"unknown status {part!r}; must be one of {', '.join(allowed)}")
        found.append(part)
    return found


async def list_changes(conn: Connection, principal: Principal, *, status: str | None, agent_id: int | None,
                       ticket_id: int | None, limit: int, offset: int) -> ChangeList:
    classifications, groups, forced = _scope(principal)
    if forced is not None:
        if ticket_id is not None and ticket_id != forced:
            return ChangeList(changes=[], total=0, limit=limit, offset=offset)
        ticket_id = forced
    statuses = _statuses(status)
    args = (classifications, groups, ticket_id, agent_id, statuses)
    rows = await repo.list_changes(conn, *args, limit, offset)
    total = await repo.count_changes(conn, *args)
    return ChangeList(changes=[to_change(r) for r in rows], total=total, limit=limit, offset=offset)


async def list_pending(conn: Connection, principal: Principal, limit: int) -> PendingList:
    classifications, groups, forced = _scope(principal)
    rows = await repo.list_pending(conn, classifications, groups, forced, limit)
    return PendingList(changes=[to_change(r) for r in rows], count=len(rows))


async def ticket_changes(conn: Connection, principal: Principal, ticket_id: int, limit: int) -> list[ChangeRequest]:
    """The newest gates of one ticket the caller can see (for the ticket detail and context)."""
    classifications, groups, forced = _scope(principal)
    if forced is not None and forced != ticket_id:
        return []
    rows = await repo.list_changes(conn, classifications, groups, ticket_id, None, [], limit, 0)
    return [to_change(r) for r in rows]


async def pending_count(conn: Connection, principal: Principal) -> int:
    """Pending, unexpired gates on tickets in the caller's scope (the dashboard)."""
    classifications, groups, forced = _scope(principal)
    return await repo.count_changes(conn, classifications, groups, forced, None, ["pending"])


async def stats(conn: Connection, principal: Principal) -> ChangeStats:
    classifications, groups, forced = _scope(principal)
    rows = await repo.change_stats(conn, classifications, groups, forced)
    by_status: dict[str, int] = {}
    by_risk: dict[str, int] = {}
    decided = 0
    decision_seconds = 0.0
    oldest: int | None = None
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        by_risk[r["risk_level"]] = by_risk.get(r["risk_level"], 0) + r["n"]
        decided += r["decided"]
        decision_seconds += r["decision_seconds"]
        if r["oldest_pending_seconds"] is not None:
            oldest = max(oldest or 0, r["oldest_pending_seconds"])
    return ChangeStats(
        total=sum(by_status.values()), by_status=by_status, by_risk_level=by_risk,
        pending=by_status.get("pending", 0), approved_awaiting_completion=by_status.get("approved", 0),
        expired_not_yet_swept=sum(r["unswept"] for r in rows), auto_approved=sum(r["auto_approved"] for r in rows),
        oldest_pending_seconds=oldest,
        average_decision_seconds=round(decision_seconds / decided, 3) if decided else None)


async def get_change(conn: Connection, principal: Principal, change_id: int) -> ChangeRequest:
    return to_change(await visible_change(conn, principal, change_id))


_NEXT_STEP = {
    "pending": "Wait for a human decision; poll this endpoint. Do not execute the change.",
    "approved": "Execute exactly the approved action, then POST /api/changes/{id}/complete with evidence in result.",
    "rejected": "Do not execute. Read decision_reason and revise the plan or ask for guidance on the ticket.",
    "expired": "Do not execute. The gate expired; file a new request if the change is still needed.",
    "cancelled": "Do not execute. The request was withdrawn.",
    "completed": "Done; the change is recorded as completed.",
    "failed": "Recorded as failed; investigate and file a new request if needed.",
}


async def change_status(conn: Connection, principal: Principal, change_id: int) -> ChangeStatus:
    row = await visible_change(conn, principal, change_id)
    status = _effective(row)
    return ChangeStatus(id=row["id"], ticket_id=row["ticket_id"], agent_id=row["agent_id"], status=status,
                        approved=status in ("approved", "completed"), can_execute=status == "approved",
                        decided_by=row["decided_by"], decided_at=row["decided_at"],
                        decision_reason=row["decision_reason"], expires_at=row["expires_at"],
                        seconds_until_expiry=row["seconds_until_expiry"],
                        next_step=_NEXT_STEP[status].replace("{id}", str(row["id"])))


# --- decisions -------------------------------------------------------------------


def check_separation(principal: Principal, row: dict[str, Any], claimed: str | None) -> None:
    """The requester of a gate, and the human who spawned the requesting agent, cannot approve it."""
    if principal.kind == "agent":
        raise Forbidden("an agent cannot approve gates; the agent that asked never approves its own")
    requester = {row["requested_by"], row["requested_by_name"], row["spawned_by"]} - {None}
    me = {principal.actor, principal.name} | ({claimed} if claimed else set())
    if requester & me:
        raise Forbidden(f"{principal.actor} requested change {row['id']} (or spawned the agent that did) "
                        "and cannot approve it; another approver must decide")


async def approve(conn: Connection, principal: Principal, settings: Settings, host: PluginHost, change_id: int,
                  data: ChangeApprove) -> ChangeDecision:
    """pending -> approved; grants an access gate's lease and resumes (or steers) the linked agent."""
    mode = data.approval_mode.strip().lower()
    if mode not in APPROVAL_MODES:
        raise Invalid("approval_mode", f"must be one of {', '.join(APPROVAL_MODES)}")
    auto = mode == "demo_auto_approval"
    if auto and not settings.demo_auto_approve:
        raise Forbidden("demo auto-approval is disabled; it is test-only (OPSGATE_DEMO_AUTO_APPROVE)")
    if data.credential_ref is not None:
        check_credential_ref(data.credential_ref)
    if data.lease_ttl_seconds is not None and not 1 <= data.lease_ttl_seconds <= settings.lease_max_ttl_seconds:
        raise Invalid("lease_ttl_seconds", f"must be between 1 and {settings.lease_max_ttl_seconds}")
    claimed = _optional(data.approved_by)
    reason = data.reason.strip()
    row = await visible_change(conn, principal, change_id)
    check_separation(principal, row, claimed)
    if row["risk_level"] in HIGH_RISK and not principal.has(APPROVE_HIGH):
        raise Forbidden(f"change {change_id} is {row['risk_level']} risk; approving it needs {APPROVE_HIGH}",
                        required_permission=APPROVE_HIGH)
    async with conn.transaction():
        updated = await repo.approve_change(conn, change_id, principal.actor, claimed, reason or None, mode, auto,
                                            settings.change_approved_ttl_seconds)
        if updated is None:
            current = await _reload(conn, change_id)
            if current["status"] == "approved" and current["decided_by"] == principal.actor:
                return ChangeDecision(change=to_change(current), note_id=None, idempotent_replay=True,
                                      access_request_id=current["access_request_id"])
            raise _conflict(current, "approved", "pending, unexpired")
        who = claimed or principal.actor
        note = (f"Change #{change_id} approved by {who}" + (f" (via {principal.actor})" if claimed else "")
                + f": {updated['action']} on {updated['target']}." + (f"\nReason: {reason}" if reason else ""))
        details = {"approved_by": principal.actor, "approved_for": claimed, "reason": reason or None,
                   "approval_mode": mode, "auto_approved": auto,
                   "expires_at": updated["expires_at"].isoformat()}
        note_id = await _journal(conn, updated, event="change_approved", actor=principal.actor,
                                 actor_kind=principal.actor_kind, note=note, details=details)
        lease = None
        access_request_id = None
        if updated["kind"] == "access":
            from opsgate.access import service as access

            access_request_id, lease = await access.on_gate_approved(
                conn, updated, principal=principal, settings=settings, host=host,
                credential_ref=data.credential_ref, lease_ttl_seconds=data.lease_ttl_seconds, reason=reason)
        from opsgate.changes import resume

        outcome = await resume.after_approval(conn, updated, note=note, note_id=note_id,
                                               approver=principal.actor)
    log.info("change approved", extra={"change_id": change_id, "approved_by": principal.actor, "mode": mode,
                                       "resume": outcome.action})
    return ChangeDecision(change=to_change(await _reload(conn, change_id)), note_id=note_id, resume=outcome,
                          lease=lease, access_request_id=access_request_id)


async def _close(conn: Connection, row: dict[str, Any], *, status: str, actor: str, actor_kind: str, reason: str,
                 host: PluginHost, note: str, details: dict[str, Any], note_agent_id: int | None = None) -> int:
    """Journal a gate that ended without approval, and close what hangs off it (access requests)."""
    note_id = await _journal(conn, row, event=f"change_{status}", actor=actor, actor_kind=actor_kind, note=note,
                             details=details, note_agent_id=note_agent_id)
    if row["kind"] == "access":
        from opsgate.access import service as access

        await access.on_gate_closed(conn, row, status=status, actor=actor, actor_kind=actor_kind, reason=reason,
                                    host=host)
    return note_id


async def reject(conn: Connection, principal: Principal, host: PluginHost, change_id: int,
                 data: ChangeReject) -> ChangeDecision:
    """pending -> rejected (any holder of changes:approve may reject, whatever the risk)."""
    if principal.kind == "agent":
        raise Forbidden("an agent cannot decide gates")
    claimed = _optional(data.rejected_by)
    reason = data.reason.strip()
    await visible_change(conn, principal, change_id)
    async with conn.transaction():
        updated = await repo.reject_change(conn, change_id, principal.actor, claimed, reason or None)
        if updated is None:
            raise _conflict(await _reload(conn, change_id), "rejected", "pending, unexpired")
        who = claimed or principal.actor
        note = (f"Change #{change_id} rejected by {who}: {updated['action']} on {updated['target']}."
                + (f"\nReason: {reason}" if reason else ""))
        note_id = await _close(conn, updated, status="rejected", actor=principal.actor,
                               actor_kind=principal.actor_kind, reason=reason or "rejected", host=host, note=note,
                               details={"rejected_by": principal.actor, "rejected_for": claimed,
                                        "reason": reason or None})
    log.info("change rejected", extra={"change_id": change_id, "rejected_by": principal.actor})
    return ChangeDecision(change=to_change(await _reload(conn, change_id)), note_id=note_id)


async def cancel(conn: Connection, principal: Principal, host: PluginHost, change_id: int,
                 data: ChangeCancel) -> ChangeDecision:
    """pending -> cancelled: the requester withdraws, or an approver clears the queue."""
    row = await visible_change(conn, principal, change_id)
    own = row["requested_by"] == principal.actor or (
        principal.kind == "agent" and principal.agent_id is not None and principal.agent_id == row["agent_id"])
    if not own and not principal.has("changes:approve"):
        raise Forbidden(f"only the requester or an approver may cancel change {change_id}",
                        required_permission="changes:approve")
    reason = data.reason.strip()
    async with conn.transaction():
        updated = await repo.cancel_change(conn, change_id, principal.actor, reason or None)
        if updated is None:
            raise _conflict(await _reload(conn, change_id), "cancelled", "pending")
        note = f"Change #{change_id} cancelled by {principal.actor}." + (f"\nReason: {reason}" if reason else "")
        note_id = await _close(conn, updated, status="cancelled", actor=principal.actor,
                               actor_kind=principal.actor_kind, reason=reason or "cancelled", host=host, note=note,
                               details={"cancelled_by": principal.actor, "reason": reason or None},
                               note_agent_id=principal.agent_id)
    log.info("change cancelled", extra={"change_id": change_id, "by": principal.actor})
    return ChangeDecision(change=to_change(await _reload(conn, change_id)), note_id=note_id)


# --- completion ------------------------------------------------------------------


def _check_binding(row: dict[str, Any], *, action: str | None = None, target: str | None = None,
                   command: str | None = None, agent_id: int | None = None, ticket_id: int | None = None) -> str:
    """Recompute the digest of the stored proposal and compare what the executor says it runs."""
    expected = gate_digest(row["action"], row["target"], row["command"], row["ticket_id"])
    if expected != row["digest"]:
        log.error("gate digest mismatch", extra={"change_id": row["id"]})
        raise Conflict(f"change {row['id']} does not match its approved digest; it cannot be executed")
    for field, value in (("action", action), ("target", target), ("command", command)):
        if value is not None and value != row[field]:
            raise Conflict(f"{field} differs from what change {row['id']} approved")
    if ticket_id is not None and ticket_id != row["ticket_id"]:
        raise Conflict(f"change {row['id']} belongs to ticket {row['ticket_id']}, not {ticket_id}")
    if agent_id is not None and row["agent_id"] is not None and agent_id != row["agent_id"]:
        raise Conflict(f"change {row['id']} is linked to agent {row['agent_id']}, not {agent_id}")
    return expected


async def finish_gate(conn: Connection, change_id: int, *, outcome: str, result: str, evidence: dict[str, Any],
                  actor: str, actor_kind: str, completed_by: str, note_agent_id: int | None,
                  binding: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """approved -> completed | failed inside the caller's transaction; (row, note id)."""
    locked = await repo.lock_change(conn, change_id)
    if locked is None:
        raise NotFound(f"change {change_id} not found")
    if locked["status"] != "approved" or locked["past_expiry"]:
        current = await _reload(conn, change_id)
        raise _conflict(current, "completed", "approved, unexpired")
    digest = _check_binding(locked, **binding)
    updated = await repo.finish_change(conn, change_id, outcome, completed_by, result, evidence, digest)
    if updated is None:
        raise _conflict(await _reload(conn, change_id), "completed", "approved, unexpired")
    verb = "completed" if outcome == "completed" else "failed"
    note = f"Change #{change_id} {verb} by {completed_by}: {updated['action']} on {updated['target']}.\nResult: {result}"
    note_id = await _journal(conn, updated, event=f"change_{verb}", actor=actor, actor_kind=actor_kind, note=note,
                             details={"completed_by": completed_by, "result": result, "evidence": evidence,
                                      "digest_verified": True},
                             note_agent_id=note_agent_id, level="info" if outcome == "completed" else "warning")
    return updated, note_id


async def complete(conn: Connection, principal: Principal, change_id: int, data: ChangeComplete) -> ChangeDecision:
    """approved -> completed (or failed): needs non-empty evidence and the approved digest."""
    result = data.result.strip()
    if not result:
        raise Invalid("result", "must not be empty: give the evidence of what was done")
    outcome = data.outcome.strip().lower()
    if outcome not in ("completed", "failed"):
        raise Invalid("outcome", "must be 'completed' or 'failed'")
    row = await visible_change(conn, principal, change_id)
    if principal.kind == "agent" and row["agent_id"] is not None and row["agent_id"] != principal.agent_id:
        raise Forbidden(f"change {change_id} belongs to agent {row['agent_id']}")
    completed_by = principal.actor if principal.kind == "agent" else (_optional(data.completed_by) or principal.actor)
    async with conn.transaction():
        _, note_id = await finish_gate(
            conn, change_id, outcome=outcome, result=result, evidence=data.evidence, actor=principal.actor,
            actor_kind=principal.actor_kind, completed_by=completed_by, note_agent_id=principal.agent_id,
            binding={"action": data.action, "target": data.target, "command": data.command})
    log.info("change %s", outcome, extra={"change_id": change_id, "by": principal.actor})
    return ChangeDecision(change=to_change(await _reload(conn, change_id)), note_id=note_id)


async def require_approved_gate(conn: Connection, change_id: int, *, agent_id: int | None, ticket_id: int | None,
                                action: str | None = None, target: str | None = None,
                                command: str | None = None) -> ChangeRequest:
    """For executors (deploy targets, tools): the gate if it is approved, unexpired and binds this exact call.

    Raises `ApprovalRequired` (409) when it is not approved (or expired),
    `NotFound` when missing and `Conflict` when the binding differs.
    """
    row = await repo.get_change(conn, change_id)
    if row is None:
        raise NotFound(f"change {change_id} not found")
    if _effective(row) != "approved":
        raise ApprovalRequired(f"change {change_id} is {_effective(row)}, not approved")
    _check_binding(row, action=action, target=target, command=command, agent_id=agent_id, ticket_id=ticket_id)
    return to_change(row)


async def complete_gate(conn: Connection, change_id: int, *, result: str, completed_by: str,
                        actor: str = SUPERVISOR_ACTOR, actor_kind: str = "system",
                        evidence: dict[str, Any] | None = None, **binding: Any) -> ChangeRequest:
    """Complete a gate from inside the control plane (an executor after a verified action)."""
    if not result.strip():
        raise Invalid("result", "must not be empty: give the evidence of what was done")
    async with conn.transaction():
        await finish_gate(conn, change_id, outcome="completed", result=result.strip(), evidence=evidence or {},
                      actor=actor, actor_kind=actor_kind, completed_by=completed_by, note_agent_id=None,
                      binding=binding)
    return to_change(await _reload(conn, change_id))


async def complete_agent_gates(conn: Connection, agent_id: int, *, task_id: int | None, evidence: str,
                               actor: str = SUPERVISOR_ACTOR) -> list[int]:
    """Auto-completion: when an agent's task completes, complete its approved gates with the task's evidence.

    Gates whose policy says `auto_complete: false` or `manual_completion_required:
    true` are left for a manual completion. Returns the completed ids.
    """
    result = evidence.strip() or f"Task {task_id} of agent {agent_id} completed."
    done = []
    for change_id in await repo.auto_completable(conn, agent_id):
        try:
            async with conn.transaction():
                await finish_gate(conn, change_id, outcome="completed", result=result,
                              evidence={"task_id": task_id, "auto_completed": True}, actor=actor,
                              actor_kind="system", completed_by=actor, note_agent_id=None, binding={})
        except Conflict as exc:  # decided concurrently (completed by the agent, expired): nothing to do
            log.info("auto-completion skipped", extra={"change_id": change_id, "reason": exc.detail})
            continue
        done.append(change_id)
    if done:
        log.info("gates auto-completed", extra={"agent_id": agent_id, "task_id": task_id, "changes": done})
    return done


# --- expiry ----------------------------------------------------------------------


async def expire(conn: Connection, host: PluginHost, change_id: int, expected: str) -> bool:
    """One gate past its expiry -> expired (the sweeper); False when it changed meanwhile."""
    async with conn.transaction():
        row = await repo.expire_change(conn, change_id, expected)
        if row is None:
            return False
        what = "approval request" if expected == "pending" else "approval (not completed in time)"
        note = (f"Change #{change_id} expired: the {what} lapsed at {row['expires_at'].isoformat()}. "
                f"{row['action']} on {row['target']} must not be executed.")
        await _close(conn, row, status="expired", actor=SYSTEM_ACTOR, actor_kind="system", reason="expired",
                     host=host, note=note, details={"expired_from": expected,
                                                    "expires_at": row["expires_at"].isoformat()})
    log.info("change expired", extra={"change_id": change_id, "from": expected})
    return True
