"""The rules of leases: grant, check on use, renew, revoke, expire, cascade.

Every transition writes its `lease.*` audit row (and a domain event) in the
same transaction as the state change. A tool call is checked afresh on every
call (no cached allow), and is refused when its audit row cannot be written
(leases.md 4.4: no disclosure without a record). No function here ever sees
a secret value: a lease carries a `credential_ref`, resolved only by the adapter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
from asyncpg import Connection

from opsgate.audit import repo as audit
from opsgate.auth.principal import Principal
from opsgate.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from opsgate.events import repo as events
from opsgate.leases import repo
from opsgate.leases.scope import (
    Scope,
    covers,
    credential_ref as check_ref,
    default_credential_ref,
    matches,
    new_lease_id,
    parse_concrete,
    parse_grant,
    specificity,
)
from opsgate.leases.schemas import Lease, LeaseList, LeaseUse, RevokedCount
from opsgate.logging import request_id_var
from opsgate.settings import Settings

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "system"
LIST_LIMIT = 200
SWEEP_BATCH = 500
NEXT_STEP = "File an access request for this scope on the ticket and wait for approval."
# Failures of the audit insert that make a tool call fail closed.
AUDIT_DOWN = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_LEASE_FIELDS = frozenset(Lease.__struct_fields__) - {"status", "secret_values_returned"}


def to_lease(row: dict[str, Any]) -> Lease:
    """A row (with `effective_status` and `ttl`) as the API record."""
    fields = {k: row[k] for k in _LEASE_FIELDS}
    return Lease(status=row["effective_status"], **fields)


def _request_id() -> str | None:
    return request_id_var.get()


async def _audit(conn: Connection, event: str, *, actor: str, actor_kind: str, row: dict[str, Any] | None = None,
                 agent_id: int | None = None, ticket_id: int | None = None, scope: str | None = None,
                 level: str = "info", **details: Any) -> int:
    """One `lease.*` audit row and its domain event, with the common fields of leases.md 4.1."""
    row = row or {}
    body = {
        "type": event,
        "actor": actor,
        "agent_id": row.get("agent_id", agent_id),
        "ticket_id": row.get("ticket_id", ticket_id),
        "lease_id": row.get("lease_id"),
        "scope": row.get("scope", scope),
        "credential_ref": row.get("credential_ref"),
        "request_id": _request_id(),
        "secret_values_returned": False,
        **details,
    }
    audit_id = await audit.record(conn, actor=actor, actor_kind=actor_kind, action=event, category="lease",
                                  level=level, target_type="lease", target_id=body["lease_id"],
                                  ticket_id=body["ticket_id"], agent_id=body["agent_id"], details=body)
    await events.emit(conn, event.replace(".", "_"), actor=actor, ticket_id=body["ticket_id"],
                      agent_id=body["agent_id"], category="lease", level=level,
                      payload={k: body[k] for k in ("lease_id", "agent_id", "ticket_id", "scope", "outcome")
                               if k in body})
    return audit_id


def _ttl(requested: int | None, settings: Settings, field: str) -> int:
    if requested is None:
        return settings.lease_default_ttl_seconds
    if requested < 1:
        raise Invalid(field, "must be at least 1 second")
    if requested > settings.lease_max_ttl_seconds:
        raise Invalid(field, f"must be at most {settings.lease_max_ttl_seconds} seconds (OPSGATE_LEASE_MAX_TTL_SECONDS)")
    return requested


# --- grants -------------------------------------------------------------------------------


async def request_pending(conn: Connection, *, agent_id: int, ticket_id: int, scope: Scope, ttl_seconds: int | None,
                          settings: Settings, change_id: int, access_request_id: int, actor: str,
                          actor_kind: str, reason: str = "") -> Lease:
    """A `pending` lease awaiting the approval of an access gate (call inside its transaction)."""
    ttl = _ttl(ttl_seconds, settings, "lease.ttl_seconds")
    source = {"kind": "approval_gate", "change_id": change_id, "access_request_id": access_request_id,
              "requested_by": actor}
    row = await repo.insert_lease(conn, new_lease_id(), agent_id, ticket_id, str(scope), *scope, None, "pending",
                                  ttl, settings.lease_max_ttl_seconds, source, change_id, access_request_id, True)
    await _audit(conn, "lease.requested", actor=actor, actor_kind=actor_kind, row=row, outcome="pending",
                 change_id=change_id, requested_ttl=ttl, reason=reason or None)
    return to_lease(row)


async def _supersede(conn: Connection, agent_id: int, scope: str, actor: str, actor_kind: str,
                     new_lease_id: str) -> None:
    for old in await repo.supersede_active(conn, agent_id, scope, actor):
        await _audit(conn, "lease.revoked", actor=actor, actor_kind=actor_kind, row=old, outcome="revoked",
                     reason="superseded", superseded_by=new_lease_id)


async def activate(conn: Connection, lease_id: str, *, credential_ref: str | None, ttl_seconds: int | None,
                   settings: Settings, approved_by: str, actor_kind: str, change_id: int | None,
                   approval_reason: str | None = None) -> Lease:
    """pending -> active on approval of its gate (call inside the approving transaction).

    The approver chooses the `credential_ref` (default `env:<SYSTEM>_<RESOURCE_TYPE>`);
    a live lease of the same agent and scope is superseded.
    """
    current = await repo.get_lease(conn, lease_id)
    if current is None:
        raise NotFound(f"lease {lease_id} not found")
    scope = parse_concrete(current["scope"])
    ref = check_ref(credential_ref) if credential_ref else default_credential_ref(scope)
    ttl = _ttl(ttl_seconds if ttl_seconds is not None else current["requested_ttl"], settings, "lease_ttl_seconds")
    await _supersede(conn, current["agent_id"], current["scope"], approved_by, actor_kind, lease_id)
    source = {"approved_by": approved_by, "policy": {"ttl_seconds": ttl,
                                                      "max_ttl_seconds": settings.lease_max_ttl_seconds}}
    row = await repo.activate_lease(conn, lease_id, ref, ttl, settings.lease_max_ttl_seconds, source)
    if row is None:
        raise Conflict(f"lease {lease_id} is {current['status']}, not pending")
    await _audit(conn, "lease.granted", actor=approved_by, actor_kind=actor_kind, row=row, outcome="granted",
                 source=row["source"], change_id=change_id, approved_by=approved_by, reason=approval_reason,
                 lease_duration=row["lease_duration"])
    log.info("lease granted", extra={"lease_id": lease_id, "agent_id": row["agent_id"], "scope": row["scope"]})
    return to_lease(row)


async def deny(conn: Connection, lease_id: str, *, actor: str, actor_kind: str, reason: str) -> Lease | None:
    """pending -> denied (its gate was rejected, cancelled or expired); None when it was not pending."""
    row = await repo.deny_lease(conn, lease_id, actor, reason)
    if row is None:
        return None
    row = {**row, "effective_status": row["status"], "ttl": 0}
    await _audit(conn, "lease.denied", actor=actor, actor_kind=actor_kind, row=row, outcome="denied", reason=reason)
    return to_lease(row)


async def grant(conn: Connection, *, agent_id: int, ticket_id: int | None, scope: str, settings: Settings,
                source: dict[str, Any], actor: str, actor_kind: str, credential_ref: str | None = None,
                ttl_seconds: int | None = None, renewable: bool = True) -> Lease:
    """A direct active grant (workflow policy or spawner scope); the scope may be a glob pattern."""
    pattern = parse_grant(scope)
    ref = check_ref(credential_ref) if credential_ref else default_credential_ref(pattern)
    ttl = _ttl(ttl_seconds, settings, "ttl_seconds")
    lease_id = new_lease_id()
    async with conn.transaction():
        await _supersede(conn, agent_id, str(pattern), actor, actor_kind, lease_id)
        row = await repo.insert_lease(conn, lease_id, agent_id, ticket_id, str(pattern), *pattern, ref, "active",
                                      ttl, settings.lease_max_ttl_seconds, source, None, None, renewable)
        await _audit(conn, "lease.granted", actor=actor, actor_kind=actor_kind, row=row, outcome="granted",
                     source=source, lease_duration=ttl)
    log.info("lease granted", extra={"lease_id": lease_id, "agent_id": agent_id, "scope": str(pattern)})
    return to_lease(row)


def spawner_holds(spawner: Principal, pattern: Scope) -> bool:
    """True when the human spawning an agent may hand it `pattern`.

    `leases:grant` (so `leases:*` and `*`) covers every scope; otherwise the
    spawner needs a permission `leases:scope:<pattern>` covering it.
    """
    if spawner.has("leases:grant"):
        return True
    for permission in spawner.permissions:
        if permission.startswith("leases:scope:"):
            try:
                held = parse_grant(permission.removeprefix("leases:scope:"))
            except Invalid:
                log.warning("ignoring malformed lease scope permission", extra={"permission": permission})
                continue
            if covers(held, pattern):
                return True
    return False


async def grant_from_spawner(conn: Connection, spawner: Principal, *, agent_id: int, ticket_id: int | None,
                             scope: str, settings: Settings, credential_ref: str | None = None,
                             ttl_seconds: int | None = None) -> Lease:
    """Hand one of the spawning human's own scopes to the agent they spawn (never more than they hold)."""
    pattern = parse_grant(scope)
    if spawner.kind == "agent" or not spawner_holds(spawner, pattern):
        raise Forbidden(f"{spawner.actor} does not hold lease scope {pattern}",
                        required_permission=f"leases:scope:{pattern}")
    source = {"kind": "spawner_scope", "approved_by": spawner.actor}
    return await grant(conn, agent_id=agent_id, ticket_id=ticket_id, scope=str(pattern), settings=settings,
                       source=source, actor=spawner.actor, actor_kind=spawner.actor_kind,
                       credential_ref=credential_ref, ttl_seconds=ttl_seconds)


async def grant_from_workflow(conn: Connection, *, workflow_id: int | str, approved_by: str, agent_id: int,
                              ticket_id: int | None, scope: str, settings: Settings,
                              credential_ref: str | None = None, ttl_seconds: int | None = None) -> Lease:
    """A pre-approved lease of an active, reviewed workflow, granted at spawn."""
    source = {"kind": "workflow_policy", "workflow_id": workflow_id, "approved_by": approved_by}
    return await grant(conn, agent_id=agent_id, ticket_id=ticket_id, scope=scope, settings=settings, source=source,
                       actor=f"workflow:{workflow_id}", actor_kind="system", credential_ref=credential_ref,
                       ttl_seconds=ttl_seconds)


# --- check on use ------------------------------------------------------------------------


def _denial_reason(recent: list[dict[str, Any]], wanted: Scope) -> str:
    """The most informative reason among the agent's matching leases (leases.md 2.6)."""
    found = set()
    for row in recent:
        grant_scope = Scope(wanted.system, wanted.resource_type, row["resource_id"], row["action"])
        if not matches(grant_scope, wanted):
            continue
        if row["ticket_closed"] and row["status"] in ("active", "pending"):
            found.add("lease_revoked")
        elif row["status"] == "active" and row["past_expiry"]:
            found.add("lease_expired")
        else:
            found.add({"pending": "lease_pending", "expired": "lease_expired", "revoked": "lease_revoked",
                       "denied": "lease_denied"}.get(row["status"], "missing_lease"))
    for reason in ("lease_pending", "lease_revoked", "lease_expired", "lease_denied"):
        if reason in found:
            return reason
    return "missing_lease"


async def _refuse(conn: Connection, principal: Principal, agent_id: int, scope: str, reason: str, *,
                  operation: str | None, detail: str) -> Forbidden:
    """Write the `lease.denied` row (fail closed when it cannot be written) and build the 403."""
    try:
        active = await repo.count_active(conn, agent_id)
        async with conn.transaction():
            await _audit(conn, "lease.denied", actor=principal.actor, actor_kind=principal.actor_kind,
                         agent_id=agent_id, ticket_id=principal.ticket_id, scope=scope, level="warning",
                         operation=operation, reason=reason, active_lease_count=active, outcome="denied")
    except AUDIT_DOWN as exc:
        log.error("lease denial could not be audited; refusing the call", extra={"agent_id": agent_id,
                                                                                 "scope": scope})
        raise Unavailable("audit unavailable: the tool call was refused") from exc
    log.info("lease check denied", extra={"agent_id": agent_id, "scope": scope, "reason": reason})
    return Forbidden(detail, body={
        "error": "access_denied", "reason": reason, "agent_id": agent_id, "scope": scope,
        "secret_values_returned": False, "next_step": NEXT_STEP, "detail": detail,
    })


async def check_lease(conn: Connection, principal: Principal, agent_id: int, scope: str, *,
                      operation: str | None = None) -> LeaseUse:
    """The active lease that lets `principal` (agent `agent_id`) make a call needing `scope`.

    Fresh on every call. A refusal writes one `lease.denied` audit row and
    raises `Forbidden` whose body is the leases.md 2.6 denial
    (`error`, `reason`, `agent_id`, `scope`, `secret_values_returned`, `next_step`);
    the caller must then not call the tool. Leases are bound to the agent's own
    token: any other principal, or another agent, is refused. Call outside a
    transaction (the denial row must survive the error).
    """
    wanted = parse_concrete(scope)
    if principal.kind != "agent" or principal.agent_id != agent_id:
        raise await _refuse(conn, principal, agent_id, str(wanted), "missing_lease", operation=operation,
                            detail="leases are bound to the agent's own token")
    candidates = []
    for row in await repo.usable_leases(conn, agent_id, *wanted[:2], wanted.action):
        granted = Scope(row["system"], row["resource_type"], row["resource_id"], row["action"])
        if not matches(granted, wanted):
            continue
        if row["ticket_id"] is not None and principal.ticket_id is not None and row["ticket_id"] != principal.ticket_id:
            continue
        candidates.append((specificity(granted), row["expire_time"], row))
    if not candidates:
        recent = await repo.recent_leases(conn, agent_id, *wanted[:2], wanted.action)
        reason = _denial_reason(recent, wanted)
        raise await _refuse(conn, principal, agent_id, str(wanted), reason, operation=operation,
                            detail=f"no active lease for {wanted} ({reason})")
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    row = candidates[0][2]
    return LeaseUse(lease_id=row["lease_id"], agent_id=agent_id, ticket_id=row["ticket_id"], scope=str(wanted),
                    granted_scope=row["scope"], credential_ref=row["credential_ref"], expire_time=row["expire_time"],
                    ttl=row["ttl"], operation=operation, request_id=_request_id())


async def record_use(conn: Connection, use: LeaseUse, *, principal: Principal, operation: str | None = None,
                     params: dict[str, Any] | None = None, upstream: dict[str, Any] | None = None,
                     upstream_session: str | None = None, outcome: str = "success") -> int:
    """The `lease.used` audit row of one tool call, written before the response.

    Raises `Unavailable` (503) when the row cannot be written, so the route
    returns an error instead of provider data. `params` are the agent's query
    parameters; `upstream_session` must already be an `hmac-sha256:` fingerprint.
    """
    if upstream_session is not None and not upstream_session.startswith("hmac-sha256:"):
        raise ValueError("upstream_session must be a keyed fingerprint, never a raw value")
    row = {"lease_id": use.lease_id, "agent_id": use.agent_id, "ticket_id": use.ticket_id, "scope": use.scope,
           "credential_ref": use.credential_ref}
    try:
        async with conn.transaction():
            return await _audit(conn, "lease.used", actor=principal.actor, actor_kind=principal.actor_kind, row=row,
                                operation=operation or use.operation, params=params or {}, upstream=upstream or {},
                                upstream_session=upstream_session, granted_scope=use.granted_scope,
                                outcome=outcome, level="info" if outcome == "success" else "warning")
    except AUDIT_DOWN as exc:
        log.error("lease use could not be audited; withholding the tool response",
                  extra={"lease_id": use.lease_id, "agent_id": use.agent_id})
        raise Unavailable("audit unavailable: the tool response was withheld") from exc


class LeaseCall:
    """Handed out by `use_lease`: the checked lease plus what the route learns during the call."""

    def __init__(self, use: LeaseUse) -> None:
        self.use = use
        self.credential_ref = use.credential_ref
        self.upstream: dict[str, Any] = {}
        self.upstream_session: str | None = None
        self.params: dict[str, Any] = {}

    def envelope(self) -> dict[str, Any]:
        return self.use.envelope()


@asynccontextmanager
async def use_lease(conn: Connection, principal: Principal, agent_id: int, scope: str, *, operation: str,
                    params: dict[str, Any] | None = None) -> AsyncIterator[LeaseCall]:
    """Check, call, record: the whole leases.md 2.6 sequence for one tool call.

        async with use_lease(conn, principal, agent_id, SCOPE, operation="wazuh.manager.status") as call:
            data = await adapter.manager_status(call.credential_ref)
            call.upstream = {"http_status": 200}
        return {**call.envelope(), "data": data}

    The `lease.used` row is written on exit (outcome `error` when the body raised);
    if it cannot be written the exit raises `Unavailable` and no data is returned.
    """
    use = await check_lease(conn, principal, agent_id, scope, operation=operation)
    call = LeaseCall(use)
    call.params = dict(params or {})
    try:
        yield call
    except BaseException:
        try:
            await record_use(conn, use, principal=principal, operation=operation, params=call.params,
                             upstream=call.upstream, upstream_session=call.upstream_session, outcome="error")
        except Unavailable:
            log.error("lease error outcome not audited", extra={"lease_id": use.lease_id})
        raise
    await record_use(conn, use, principal=principal, operation=operation, params=call.params,
                     upstream=call.upstream, upstream_session=call.upstream_session, outcome="success")


# --- reads, renew, revoke -------------------------------------------------------------------


def _may_read(principal: Principal, agent_id: int) -> bool:
    if principal.kind == "agent":
        return principal.agent_id == agent_id
    return principal.has("leases:read")


async def _visible(conn: Connection, principal: Principal, lease_id: str) -> dict[str, Any]:
    row = await repo.get_lease(conn, lease_id)
    if row is None or (principal.kind == "agent" and principal.agent_id != row["agent_id"]):
        raise NotFound(f"lease {lease_id} not found")
    return row


async def list_agent_leases(conn: Connection, principal: Principal, agent_id: int) -> LeaseList:
    if not _may_read(principal, agent_id):
        if principal.kind == "agent":
            raise Forbidden("an agent may only list its own leases")
        raise Forbidden(f"{principal.actor} lacks leases:read", required_permission="leases:read")
    rows = await repo.list_agent_leases(conn, agent_id, LIST_LIMIT)
    return LeaseList(agent_id=agent_id, leases=[to_lease(r) for r in rows])


async def get_lease(conn: Connection, principal: Principal, lease_id: str) -> Lease:
    if principal.kind != "agent" and not principal.has("leases:read"):
        raise Forbidden(f"{principal.actor} lacks leases:read", required_permission="leases:read")
    return to_lease(await _visible(conn, principal, lease_id))


async def renew(conn: Connection, principal: Principal, settings: Settings, lease_id: str,
                increment: int | None) -> Lease:
    """Extend an active, renewable lease from now, never past its max_expire_time; 409 otherwise."""
    if principal.kind != "agent" and not principal.has("leases:write"):
        raise Forbidden(f"{principal.actor} lacks leases:write", required_permission="leases:write")
    if increment is not None and increment < 1:
        raise Invalid("increment", "must be at least 1 second")
    amount = min(increment or settings.lease_default_ttl_seconds, settings.lease_max_ttl_seconds)
    current = await _visible(conn, principal, lease_id)
    async with conn.transaction():
        row = await repo.renew_lease(conn, lease_id, amount)
        if row is None:
            fresh = await repo.get_lease(conn, lease_id) or current
            why = "not renewable" if fresh["effective_status"] == "active" and not fresh["renewable"] \
                else fresh["effective_status"]
            raise Conflict(f"lease {lease_id} cannot be renewed: it is {why}")
        await _audit(conn, "lease.renewed", actor=principal.actor, actor_kind=principal.actor_kind, row=row,
                     outcome="renewed", increment=increment, lease_duration=row["lease_duration"],
                     expire_time=row["expire_time"].isoformat(), max_expire_time=row["max_expire_time"].isoformat())
    log.info("lease renewed", extra={"lease_id": lease_id, "lease_duration": row["lease_duration"]})
    return to_lease(row)


async def revoke(conn: Connection, principal: Principal, lease_id: str, reason: str) -> Lease:
    """Revoke one lease; idempotent (a lease that is no longer live is returned unchanged)."""
    if principal.kind != "agent" and not principal.has("leases:revoke"):
        raise Forbidden(f"{principal.actor} lacks leases:revoke", required_permission="leases:revoke")
    current = await _visible(conn, principal, lease_id)
    async with conn.transaction():
        row = await repo.revoke_lease(conn, lease_id, principal.actor, reason.strip() or "revoked")
        if row is None:
            return to_lease(await repo.get_lease(conn, lease_id) or current)
        await _audit(conn, "lease.revoked", actor=principal.actor, actor_kind=principal.actor_kind, row=row,
                     outcome="revoked", reason=row["revoke_reason"])
    log.info("lease revoked", extra={"lease_id": lease_id, "agent_id": row["agent_id"]})
    return to_lease(row)


async def revoke_prefix(conn: Connection, principal: Principal, scope_prefix: str, agent_id: int | None,
                        reason: str) -> RevokedCount:
    """Revoke every live lease whose scope starts with `scope_prefix` (incident response)."""
    prefix = scope_prefix.strip()
    if not prefix:
        raise Invalid("scope_prefix", "must not be empty (use the system name, e.g. 'wazuh/')")
    if any(c in prefix for c in "*?[]%") or "//" in prefix or prefix.count("/") > 3:
        raise Invalid("scope_prefix", "must be a literal start of a scope such as 'wazuh/' or 'wazuh/api/'")
    async with conn.transaction():
        rows = await repo.revoke_prefix(conn, prefix, agent_id, principal.actor, reason.strip() or "revoke_prefix")
        for row in rows:
            await _audit(conn, "lease.revoked", actor=principal.actor, actor_kind=principal.actor_kind, row=row,
                         outcome="revoked", reason=row["revoke_reason"], scope_prefix=prefix)
    log.info("leases revoked by prefix", extra={"scope_prefix": prefix, "revoked": len(rows)})
    return RevokedCount(revoked=len(rows), lease_ids=[r["lease_id"] for r in rows])


# --- cascades and the sweeper ------------------------------------------------------------


async def _cascade(conn: Connection, rows: list[dict[str, Any]], actor: str, reason: str, status: str) -> int:
    for row in rows:
        await _audit(conn, f"lease.{status}", actor=actor, actor_kind="system", row=row, outcome=status,
                     reason=reason)
    return len(rows)


async def revoke_agent_leases(conn: Connection, agent_id: int, reason: str = "agent_ended", *,
                              actor: str = SYSTEM_ACTOR) -> int:
    """Cascade: the agent's live leases -> revoked; returns how many.

    `agent_ended` (stopped/terminated) also revokes its pending leases;
    `task_finished` keeps pending ones, so an access request filed before the
    task ended can still be granted when it is approved (the approval resumes
    the agent). Runs in the caller's transaction when there is one.
    """
    async with conn.transaction():
        rows = await repo.revoke_agent_leases(conn, agent_id, actor, reason, reason == "agent_ended")
        count = await _cascade(conn, rows, actor, reason, "revoked")
    if count:
        log.info("agent leases revoked", extra={"agent_id": agent_id, "reason": reason, "revoked": count})
    return count


async def revoke_ticket_leases(conn: Connection, ticket_id: int, reason: str = "ticket_closed", *,
                               actor: str = SYSTEM_ACTOR) -> int:
    """Every live or pending lease bound to the ticket -> revoked."""
    async with conn.transaction():
        rows = await repo.revoke_ticket_leases(conn, ticket_id, actor, reason)
        count = await _cascade(conn, rows, actor, reason, "revoked")
    if count:
        log.info("ticket leases revoked", extra={"ticket_id": ticket_id, "reason": reason, "revoked": count})
    return count


async def sweep(conn: Connection, batch: int = SWEEP_BATCH) -> dict[str, int]:
    """Expire leases past expire_time and revoke leases of closed tickets; returns the counts."""
    async with conn.transaction():
        expired = await _cascade(conn, await repo.expire_due_leases(conn, batch), SYSTEM_ACTOR, "expire_time passed",
                                 "expired")
    async with conn.transaction():
        closed = await _cascade(conn, await repo.revoke_closed_ticket_leases(conn, batch), SYSTEM_ACTOR,
                                "ticket_closed", "revoked")
    async with conn.transaction():
        ended_rows = await repo.revoke_ended_agent_leases(conn, batch)
        for row in ended_rows:
            await _audit(conn, "lease.revoked", actor=SYSTEM_ACTOR, actor_kind="system", row=row, outcome="revoked",
                         reason=row["revoke_reason"])
    return {"leases_expired": expired, "leases_revoked_ticket_closed": closed,
            "leases_revoked_agent_ended": len(ended_rows)}


def lease_json(lease: Lease) -> dict[str, Any]:
    """A lease as plain JSON values (for embedding in other responses and audit details)."""
    return msgspec.to_builtins(lease)
