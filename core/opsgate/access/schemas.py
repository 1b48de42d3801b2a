"""Request and response shapes of the access-request endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from opsgate.changes.schemas import ChangeRequest
from opsgate.leases.schemas import Lease, LeaseRequest


class AccessRequestCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/tickets/{id}/access-request` (the contract's body plus `lease` and `expires_in_seconds`)."""

    resource: Annotated[str, Meta(max_length=500)]
    permission: Annotated[str, Meta(max_length=500)]
    agent_id: Annotated[int, Meta(ge=1)] | None = None
    account_ref: Annotated[str, Meta(max_length=200)] | None = None
    assignment_group: Annotated[str, Meta(max_length=200)] | None = None
    risk_level: Annotated[str, Meta(max_length=32)] = "medium"
    sync_provider: bool = False
    reason: Annotated[str, Meta(max_length=16384)] = ""
    lease: LeaseRequest | None = None
    expires_in_seconds: int | None = None


class ChildTicket(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    title: str | None
    status: str | None
    owning_group: str | None


class LeaseSummary(msgspec.Struct, kw_only=True, frozen=True):
    lease_id: str
    status: str | None
    expire_time: datetime | None
    credential_ref: str | None
    secret_values_returned: bool = False


class AccessRequest(msgspec.Struct, kw_only=True, frozen=True):
    """An access request; `status` is one of pending_approval, approved, granted, rejected, expired, cancelled."""

    id: int
    ticket_id: int
    child_ticket_id: int | None
    child_ticket: ChildTicket | None
    change_id: int
    change_status: str
    agent_id: int | None
    resource: str
    permission: str
    account_ref: str | None
    assignment_group: str | None
    risk_level: str
    reason: str
    lease_request: dict[str, Any] | None
    scope: str | None
    lease: LeaseSummary | None
    status: str
    requested_by: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class AccessRequestCreated(msgspec.Struct, kw_only=True, frozen=True):
    access_request: AccessRequest
    change: ChangeRequest
    lease: Lease | None


class AccessRequestList(msgspec.Struct, kw_only=True, frozen=True):
    ticket_id: int
    access_requests: list[AccessRequest]
