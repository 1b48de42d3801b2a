"""Request and response shapes of the change-request (approval gate) endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from opsgate.leases.schemas import Lease

Short = Annotated[str, Meta(max_length=200)]
Text = Annotated[str, Meta(max_length=16384)]
LongText = Annotated[str, Meta(max_length=65536)]


class ChangeRequestCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/changes/request` (the contract's fields plus `expires_in_seconds`)."""

    ticket_id: Annotated[int, Meta(ge=1)]
    action: Short
    target: Annotated[str, Meta(max_length=2000)]
    agent_id: Annotated[int, Meta(ge=1)] | None = None
    reason: Text = ""
    command: Text = ""
    risk_level: Annotated[str, Meta(max_length=32)] = "medium"
    approval_policy: dict[str, Any] = msgspec.field(default_factory=dict)
    expires_in_seconds: int | None = None


class ChangeApprove(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/changes/{id}/approve`.

    `approved_by` names the human a service principal acts for; the recorded
    approver is always the authenticated principal. `credential_ref` and
    `lease_ttl_seconds` apply to an access gate's lease (the approver, never the
    requester, picks the credential).
    """

    approved_by: Short | None = None
    reason: Text = ""
    approval_mode: Annotated[str, Meta(max_length=64)] = "manual_approval"
    credential_ref: Annotated[str, Meta(max_length=512)] | None = None
    lease_ttl_seconds: int | None = None


class ChangeReject(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    rejected_by: Short | None = None
    reason: Text = ""


class ChangeCancel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Text = ""


class ChangeComplete(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/changes/{id}/complete`: non-empty `result` (the evidence) is required.

    `action`, `target` and `command`, when given, must equal what was approved
    (the gate digest is re-checked either way). `outcome` `failed` records a
    failed execution instead of a completion.
    """

    result: LongText
    completed_by: Short | None = None
    outcome: Annotated[str, Meta(max_length=32)] = "completed"
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    action: Short | None = None
    target: Annotated[str, Meta(max_length=2000)] | None = None
    command: Text | None = None


class ChangeRequest(msgspec.Struct, kw_only=True, frozen=True):
    """A gate. `status` is effective: an open gate past `expires_at` reads `expired`."""

    id: int
    ticket_id: int
    agent_id: int | None
    kind: str
    action: str
    target: str
    command: str
    reason: str
    risk_level: str
    approval_policy: dict[str, Any]
    digest: str
    status: str
    stored_status: str
    expired: bool
    requested_by: str
    requested_by_kind: str
    spawned_by: str | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    seconds_until_expiry: int | None
    waiting_seconds: int | None
    decided_by: str | None
    decided_for: str | None
    decided_at: datetime | None
    decision_reason: str | None
    approval_gate: bool
    approval_mode: str | None
    auto_approved: bool | None
    completed_by: str | None
    completed_at: datetime | None
    result: str | None
    evidence: dict[str, Any]
    access_request_id: int | None = None


class ChangeList(msgspec.Struct, kw_only=True, frozen=True):
    changes: list[ChangeRequest]
    total: int
    limit: int
    offset: int


class PendingList(msgspec.Struct, kw_only=True, frozen=True):
    changes: list[ChangeRequest]
    count: int


class ChangeStatus(msgspec.Struct, kw_only=True, frozen=True):
    """The compact poll shape for agents."""

    id: int
    ticket_id: int
    agent_id: int | None
    status: str
    approved: bool
    can_execute: bool
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    expires_at: datetime
    seconds_until_expiry: int | None
    next_step: str


class ChangeStats(msgspec.Struct, kw_only=True, frozen=True):
    total: int
    by_status: dict[str, int]
    by_risk_level: dict[str, int]
    pending: int
    approved_awaiting_completion: int
    expired_not_yet_swept: int
    auto_approved: int
    oldest_pending_seconds: int | None
    average_decision_seconds: float | None


class ResumeOutcome(msgspec.Struct, kw_only=True, frozen=True):
    """What approving did for the linked agent: a continuation task, a steering event, or nothing."""

    action: str  # queued_task | steered | none | unavailable
    detail: str
    task_id: int | None = None
    agent_id: int | None = None
    steering_event_id: int | None = None


class ChangeDecision(msgspec.Struct, kw_only=True, frozen=True):
    """The answer of approve, reject, cancel and complete."""

    change: ChangeRequest
    note_id: int | None
    idempotent_replay: bool = False
    resume: ResumeOutcome | None = None
    lease: Lease | None = None
    access_request_id: int | None = None
