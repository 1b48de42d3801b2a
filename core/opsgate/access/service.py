"""The rules of access requests: the permission wall as a ticket, a gate and (optionally) a lease.

Filing one creates, in one transaction, a child access ticket assigned to the
owning group, an approval gate (kind `access`) on the original ticket linked
to the agent, the access request row and, when a structured `lease` is asked
for, a `pending` lease. Approving the gate grants the lease (then completes the
gate with the grant as evidence and resolves the child ticket) and resumes the
agent; rejection, cancellation or expiry denies the lease and closes the child.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncpg import Connection

from opsgate.access import repo
from opsgate.access.schemas import (
    AccessRequest,
    AccessRequestCreate,
    AccessRequestCreated,
    AccessRequestList,
    ChildTicket,
    LeaseSummary,
)
from opsgate.audit import repo as audit
from opsgate.auth.principal import Principal
from opsgate.changes import service as changes
from opsgate.errors import Conflict, Invalid
from opsgate.events import repo as events
from opsgate.events.repo import CHANNEL
from opsgate.leases import service as leases
from opsgate.leases.scope import concrete
from opsgate.leases.schemas import Lease
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets import service as tickets

log = logging.getLogger(__name__)

LIST_LIMIT = 200
FINAL_TICKET_STATUSES = frozenset({"closed", "cancelled", "rejected"})
# Acts on child access tickets whatever the decider's own group scope: the owning
# group of an access ticket is the group that grants access, not the requester's.
CONTROL_PLANE = Principal(kind="service", name="control-plane", permissions=frozenset({"*"}))


def _text(value: str | None, field: str, *, required: bool = False) -> str | None:
    text = (value or "").strip()
    if required and not text:
        raise Invalid(field, "must not be empty")
    return text or None


def to_access_request(row: dict[str, Any]) -> AccessRequest:
    child = None
    if row["child_ticket_id"] is not None:
        child = ChildTicket(id=row["child_ticket_id"], title=row["child_title"], status=row["child_status"],
                            owning_group=row["child_owning_group"])
    lease = None
    if row["lease_id"] is not None:
        lease = LeaseSummary(lease_id=row["lease_id"], status=row["lease_status"],
                             expire_time=row["lease_expire_time"], credential_ref=row["lease_credential_ref"])
    status = row["status"]
    if status in ("pending_approval", "approved") and row["change_status"] == "expired":
        status = "expired"
    return AccessRequest(
        id=row["id"], ticket_id=row["ticket_id"], child_ticket_id=row["child_ticket_id"], child_ticket=child,
        change_id=row["change_id"], change_status=row["change_status"], agent_id=row["agent_id"],
        resource=row["resource"], permission=row["permission"], account_ref=row["account_ref"],
        assignment_group=row["assignment_group"], risk_level=row["risk_level"], reason=row["reason"],
        lease_request=row["lease_request"], scope=row["scope"], lease=lease, status=status,
        requested_by=row["requested_by"], created_at=row["created_at"], updated_at=row["updated_at"],
        decided_by=row["decided_by"], decided_at=row["decided_at"])


async def _journal(conn: Connection, action: str, *, actor: str, actor_kind: str, row: dict[str, Any],
                   details: dict[str, Any]) -> None:
    body = {"access_request_id": row["id"], "ticket_id": row["ticket_id"], "child_ticket_id": row["child_ticket_id"],
            "change_id": row["change_id"], "agent_id": row["agent_id"], "resource": row["resource"],
            "permission": row["permission"], "scope": row["scope"], "lease_id": row["lease_id"], **details}
    await audit.record(conn, actor=actor, actor_kind=actor_kind, action=action, category="access",
                       target_type="access_request", target_id=row["id"], ticket_id=row["ticket_id"],
                       agent_id=row["agent_id"], details=body)
    await events.emit(conn, action, actor=actor, ticket_id=row["ticket_id"], agent_id=row["agent_id"],
                      category="access", payload=body)


async def create_access_request(conn: Connection, principal: Principal, settings: Settings, host: PluginHost,
                                ticket_id: int, data: AccessRequestCreate) -> AccessRequestCreated:
    resource = _text(data.resource, "resource", required=True)
    permission = _text(data.permission, "permission", required=True)
    risk = changes.risk_level(data.risk_level)
    agent_id = data.agent_id
    if principal.kind == "agent":
        if agent_id is not None and agent_id != principal.agent_id:
            raise Invalid("agent_id", f"an agent token may only file access requests for itself "
                                      f"(agent {principal.agent_id})")
        agent_id = principal.agent_id
    scope = None
    lease_request = None
    if data.lease is not None:
        if data.lease.credential_ref is not None:
            raise Invalid("lease.credential_ref", "is chosen by the approver, never by the requester; remove it")
        scope = concrete(data.lease.system, data.lease.resource_type, data.lease.resource_id, data.lease.action,
                         field="lease")
        if data.lease.ttl_seconds is not None and data.lease.ttl_seconds > settings.lease_max_ttl_seconds:
            raise Invalid("lease.ttl_seconds", f"must be at most {settings.lease_max_ttl_seconds} seconds")
        if agent_id is None:
            raise Invalid("agent_id", "a lease can only be requested for an agent; give agent_id")
        lease_request = {**dict(zip(("system", "resource_type", "resource_id", "action"), scope)),
                         "ttl_seconds": data.lease.ttl_seconds}
    account_ref = _text(data.account_ref, "account_ref")
    reason = (data.reason or "").strip()
    async with conn.transaction():
        parent = await tickets.visible_ticket(conn, principal, ticket_id, lock=True)
        if parent["status"] in FINAL_TICKET_STATUSES:
            raise Conflict(f"ticket {ticket_id} is {parent['status']}; no access can be requested on it")
        group = _text(data.assignment_group, "assignment_group") or parent["owning_group"]
        description = "\n".join(line for line in (
            f"Access requested for ticket #{ticket_id} by {principal.actor}.",
            f"Resource: {resource}", f"Permission: {permission}",
            f"Account: {account_ref}" if account_ref else "",
            f"Lease scope: {scope}" if scope else "",
            f"Risk: {risk}", f"Reason: {reason}" if reason else "") if line)
        child_id = await _create_child(conn, principal, settings, parent=parent, group=group,
                                       title=f"Access request: {permission} on {resource}"[:500],
                                       description=description, sync_provider=data.sync_provider)
        command = f"grant permission={permission!r} account_ref={account_ref!r} scope={str(scope) if scope else None!r}"
        gate = await changes.create_gate(
            conn, principal, settings, ticket=parent, agent_id=agent_id, kind="access", action="grant_access",
            target=resource, command=command, reason=reason, risk=risk,
            approval_policy={"requires_human": True, "access_request": True, "child_ticket_id": child_id},
            expires_in_seconds=data.expires_in_seconds,
            note=(f"Access requested by {principal.actor} (change #{{id}}): {permission} on {resource}"
                  + (f", lease scope {scope}" if scope else "") + f". Child access ticket #{child_id} assigned to "
                  f"{group or 'no group'}." + (f"\nReason: {reason}" if reason else "")),
            details={"child_ticket_id": child_id, "resource": resource, "permission": permission,
                     "scope": str(scope) if scope else None})
        request_id = await repo.insert_access_request(
            conn, ticket_id, child_id, gate["id"], agent_id, resource, permission, account_ref, group, risk, reason,
            lease_request, str(scope) if scope else None, principal.actor)
        lease = None
        if scope is not None:
            lease = await leases.request_pending(
                conn, agent_id=agent_id, ticket_id=ticket_id, scope=scope, ttl_seconds=data.lease.ttl_seconds,
                settings=settings, change_id=gate["id"], access_request_id=request_id, actor=principal.actor,
                actor_kind=principal.actor_kind, reason=reason)
            await repo.set_lease(conn, request_id, lease.lease_id)
        row = await repo.get_view(conn, request_id)
        await _journal(conn, "access_requested", actor=principal.actor, actor_kind=principal.actor_kind, row=row,
                       details={"risk_level": risk, "assignment_group": group, "reason": reason or None})
    log.info("access requested", extra={"access_request_id": request_id, "ticket_id": ticket_id,
                                        "change_id": gate["id"], "child_ticket_id": child_id})
    return AccessRequestCreated(access_request=to_access_request(row), change=changes.to_change(gate), lease=lease)


async def _create_child(conn: Connection, principal: Principal, settings: Settings, *, parent: dict[str, Any],
                        group: str | None, title: str, description: str, sync_provider: bool) -> int:
    """The child access ticket: owned by the group that grants access, as classified as its parent.

    Written by this package's own statement (inside the request's transaction)
    rather than `tickets.service.create_ticket`, which NOTIFYs after its own commit.
    """
    provider = settings.ticket_provider or "local"
    if not sync_provider or provider == "local":
        provider, sync_status = "local", "local_only"
    else:
        sync_status = "pending_create"  # the provider outbox delivers it
    details = {"title": title, "ticket_class": "UserRequest", "status": "new", "priority": parent["priority"],
               "owning_group": group, "security_classification": parent["security_classification"],
               "created_by": principal.actor, "provider": provider, "provider_sync_status": sync_status,
               "parent_ticket_id": parent["id"], "access_request": True}
    return await repo.create_child_ticket(
        conn, title, description, parent["priority"], group, parent["security_classification"], principal.actor,
        provider, sync_status, details, principal.actor, principal.actor_kind, CHANNEL)


async def list_access_requests(conn: Connection, principal: Principal, ticket_id: int) -> AccessRequestList:
    await tickets.visible_ticket(conn, principal, ticket_id)
    rows = await repo.list_for_ticket(conn, ticket_id, LIST_LIMIT)
    return AccessRequestList(ticket_id=ticket_id, access_requests=[to_access_request(r) for r in rows])


async def _set_child_status(conn: Connection, child_id: int | None, status: str, *, actor: str, actor_kind: str,
                            reason: str) -> None:
    """Resolve or close the child access ticket (unless someone already closed it)."""
    if child_id is None:
        return
    child = await tickets.visible_ticket(conn, CONTROL_PLANE, child_id)
    if child["status"] in FINAL_TICKET_STATUSES or child["status"] == status:
        return
    body = f"Status changed from {child['status']} to {status} by {actor}.\nReason: {reason}"
    changed = await repo.set_child_status(conn, child_id, child["status"], status, body, actor,
                                          {"actor": actor, "reason": reason}, actor_kind, CHANNEL)
    if not changed:  # changed concurrently by a human: their decision stands
        log.info("child access ticket not updated", extra={"ticket_id": child_id})


async def on_gate_approved(conn: Connection, gate: dict[str, Any], *, principal: Principal, settings: Settings,
                           host: PluginHost, credential_ref: str | None, lease_ttl_seconds: int | None,
                           reason: str) -> tuple[int | None, Lease | None]:
    """Inside the approving transaction: mark the request approved, grant its lease, finish the gate."""
    row = await repo.lock_by_change(conn, gate["id"])
    if row is None:
        return None, None
    lease = None
    if row["lease_id"] is None:
        await repo.decide(conn, row["id"], ["pending_approval"], "approved", principal.actor)
        await _journal(conn, "access_request_approved", actor=principal.actor, actor_kind=principal.actor_kind,
                       row=row, details={"reason": reason or None})
        return row["id"], None
    lease = await leases.activate(conn, row["lease_id"], credential_ref=credential_ref, ttl_seconds=lease_ttl_seconds,
                                  settings=settings, approved_by=principal.actor, actor_kind=principal.actor_kind,
                                  change_id=gate["id"], approval_reason=reason or None)
    await repo.decide(conn, row["id"], ["pending_approval"], "granted", principal.actor)
    await _journal(conn, "access_granted", actor=principal.actor, actor_kind=principal.actor_kind, row=row,
                   details={"lease_id": lease.lease_id, "credential_ref": lease.credential_ref,
                            "expire_time": lease.expire_time.isoformat() if lease.expire_time else None,
                            "secret_values_returned": False})
    await changes.finish_gate(
        conn, gate["id"], outcome="completed",
        result=(f"Lease {lease.lease_id} granted for {lease.scope} until "
                f"{lease.expire_time.isoformat() if lease.expire_time else '-'} (credential_ref "
                f"{lease.credential_ref}; no secret value was disclosed)."),
        evidence={"lease_id": lease.lease_id, "scope": lease.scope, "credential_ref": lease.credential_ref},
        actor=principal.actor, actor_kind=principal.actor_kind, completed_by="control-plane", note_agent_id=None,
        binding={})
    await _set_child_status(conn, row["child_ticket_id"], "resolved", actor=principal.actor,
                            actor_kind=principal.actor_kind, reason=f"Access granted through change #{gate['id']} (lease {lease.lease_id}).")
    return row["id"], lease


async def on_gate_closed(conn: Connection, gate: dict[str, Any], *, status: str, actor: str, actor_kind: str,
                         reason: str, host: PluginHost) -> None:
    """Inside the gate's rejecting/cancelling/expiring transaction: deny the lease, close the child ticket."""
    row = await repo.lock_by_change(conn, gate["id"])
    if row is None:
        return
    decided = await repo.decide(conn, row["id"], ["pending_approval", "approved"], status, actor)
    if decided is None:
        return
    if row["lease_id"] is not None:
        await leases.deny(conn, row["lease_id"], actor=actor, actor_kind=actor_kind, reason=f"gate {status}: {reason}")
    await _journal(conn, f"access_request_{status}", actor=actor, actor_kind=actor_kind, row=row,
                   details={"reason": reason})
    await _set_child_status(conn, row["child_ticket_id"], "closed", actor=actor, actor_kind=actor_kind,
                            reason=f"Access request {status} (change #{gate['id']}): {reason}")
