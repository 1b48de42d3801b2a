"""Reconcile, don't overwrite: what a remote status change may do to a canonical ticket.

Pure rules, no I/O. The inbound sync asks `decide` only when the remote
status changed since the last time opsgate saw (or set) it.

- A local terminal status (closed, cancelled, rejected) never changes.
- While opsgate still has changes of the ticket queued for the provider,
  opsgate is ahead: the remote status is not applied (and not yet taken as
  seen), no conflict is recorded.
- A ticket in a local wait state (awaiting_user_response, pending_approval,
  awaiting_access, blocked), with an active agent, or resolved locally is not
  moved by the provider; the difference is recorded as a conflict note.
- Otherwise a remote status is applied when it moves the ticket forward or
  sideways in the lifecycle, and recorded as a conflict when it would move it
  backwards.
"""

from __future__ import annotations

import msgspec

FINAL = frozenset({"closed", "cancelled", "rejected"})
WAIT = frozenset({"awaiting_user_response", "pending_approval", "awaiting_access", "blocked"})
RANK: dict[str, int] = {
    "new": 0, "assigned": 1, "in_progress": 2, "awaiting_user_response": 2, "pending_approval": 2,
    "awaiting_access": 2, "blocked": 2, "resolved": 3, "closed": 4, "cancelled": 4, "rejected": 4,
}


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    action: str  # none | apply | conflict | defer
    reason: str = ""


def decide(local: str, remote: str | None, *, agent_active: bool, outbound_pending: bool) -> Decision:
    """What to do with a changed remote status (`remote` already mapped to an opsgate status, or None)."""
    if remote is None:
        return Decision(action="none", reason="the remote status has no opsgate equivalent")
    if remote == local:
        return Decision(action="none", reason="already the same")
    if remote not in RANK:
        return Decision(action="none", reason=f"unknown status {remote!r}")
    if local in FINAL:
        return Decision(action="conflict", reason=f"the ticket is {local} in opsgate, a final status")
    if outbound_pending:
        return Decision(action="defer", reason="opsgate has changes of this ticket still queued for the provider")
    if local in WAIT:
        return Decision(action="conflict", reason=f"the ticket is waiting in opsgate ({local})")
    if agent_active:
        return Decision(action="conflict", reason="an agent is working the ticket in opsgate")
    if local == "resolved":
        if remote == "closed":
            return Decision(action="apply", reason="closed after being resolved")
        return Decision(action="conflict", reason="the ticket is resolved in opsgate")
    if RANK[remote] < RANK.get(local, 0):
        return Decision(action="conflict", reason=f"{remote} would move the ticket backwards from {local}")
    return Decision(action="apply", reason="forward in the lifecycle")
