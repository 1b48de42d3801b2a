"""Request and response shapes of the ticket endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

Short = Annotated[str, Meta(max_length=200)]
Email = Annotated[str, Meta(max_length=320)]
Title = Annotated[str, Meta(max_length=500)]
# Character bound here; the 64 KiB byte bound is checked by the service.
LongText = Annotated[str, Meta(max_length=65536)]
Reason = Annotated[str, Meta(max_length=8192)]
Priority = str | int


class TicketCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title
    description: LongText = ""
    ticket_class: Annotated[str, Meta(max_length=64)] = "Incident"
    status: Annotated[str, Meta(max_length=64)] = "new"
    priority: Priority = "P3"
    created_by: Short | None = None
    assignee: Short | None = None
    assignee_team: Short | None = None
    owning_group: Short | None = None
    security_classification: Annotated[str, Meta(max_length=32)] = "internal"
    requester_name: Short | None = None
    requester_email: Email | None = None
    requester_phone: Annotated[str, Meta(max_length=64)] | None = None
    affected_user: Short | None = None
    affected_user_email: Email | None = None
    provider: Annotated[str, Meta(max_length=64)] | None = None
    sync_provider: bool = True
    auto_assign: bool = False


class NoteCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    body: LongText
    author: Short | None = None
    source: Annotated[str, Meta(max_length=64)] | None = None
    visibility: Annotated[str, Meta(max_length=32)] = "internal"
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class AttachmentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    filename: Annotated[str, Meta(min_length=1, max_length=255)]
    content_type: Annotated[str, Meta(min_length=1, max_length=255)] = "application/octet-stream"
    size_bytes: Annotated[int, Meta(ge=0, le=2**53)] = 0
    storage_ref: Annotated[str, Meta(max_length=2048)] | None = None
    sha256: Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")] | None = None
    note_id: Annotated[int, Meta(ge=1)] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class StatusChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Annotated[str, Meta(max_length=64)]
    actor: Short | None = None
    reason: Reason = ""
    close_provider: bool = True
    expected_status: Annotated[str, Meta(max_length=64)] | None = None


class AssignmentChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    assignee: Short | None | UnsetType = UNSET
    assignee_team: Short | None | UnsetType = UNSET
    owning_group: Short | None | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    escalation_tier: Short | None = None
    actor: Short | None = None
    reason: Reason = ""


class InfoRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    question: LongText
    requested_by: Short | None = None
    contact_method: Annotated[str, Meta(max_length=64)] | None = None
    recipient: Email | None = None
    context: Reason | None = None


class UserResponse(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    response: LongText
    responder_name: Short | None = None
    responder_email: Email | None = None
    resume_agent: bool = True


# --- responses ---------------------------------------------------------------


class Ticket(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    title: str
    description: str
    ticket_class: str
    status: str
    previous_status: str | None
    priority: str
    assignee: str | None
    assignee_team: str | None
    owning_group: str | None
    security_classification: str
    requester_name: str | None
    requester_email: str | None
    requester_phone: str | None
    affected_user: str | None
    affected_user_email: str | None
    created_by: str
    agent_id: int | None
    provider: str
    provider_ref: str | None
    provider_class: str | None
    provider_url: str | None
    provider_sync_status: str
    provider_last_error: str | None
    external_url: str | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None


class AutoAssignment(msgspec.Struct, frozen=True, kw_only=True):
    requested: bool
    matched: bool
    rule_id: int | None = None
    agent_id: int | None = None
    reason: str


class TicketDetail(Ticket, frozen=True, kw_only=True):
    provider_payload: dict[str, Any]
    agent: dict[str, Any] | None
    change_requests: list[dict[str, Any]]


class TicketCreated(TicketDetail, frozen=True, kw_only=True):
    auto_assignment: AutoAssignment
    idempotent_replay: bool = False


class TicketList(msgspec.Struct, frozen=True, kw_only=True):
    tickets: list[Ticket]
    total: int
    total_exact: bool
    limit: int
    offset: int


class Note(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    ticket_id: int
    kind: str
    body: str
    author: str
    source: str
    visibility: str
    agent_id: int | None
    details: dict[str, Any]
    created_at: datetime
    steer: bool
    idempotent_replay: bool = False


class Attachment(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    ticket_id: int
    note_id: int | None
    filename: str
    content_type: str
    size_bytes: int
    storage_ref: str | None
    sha256: str | None
    metadata: dict[str, Any]
    uploaded_by: str
    created_at: datetime


class AgentResume(msgspec.Struct, frozen=True, kw_only=True):
    """What a user response did for the ticket's agent.

    action: `resumed` (a continuation task was queued), `steered` (a task is still
    active: the answer reaches it as a steering event only), `not_resumed` (the
    agent could not continue, see reason) or `none` (not asked, or no agent).
    """

    requested: bool
    action: str
    agent_id: int | None = None
    task_id: int | None = None
    steering_event_ids: list[int] = msgspec.field(default_factory=list)
    reason: str


class TicketChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Answer of status, assignment, request-info and user-response: the ticket after, and its note.

    `leases_revoked` only on a status change to resolved/closed/cancelled/rejected;
    `agent_resume` only on a user response.
    """

    ticket: TicketDetail
    note: Note
    previous_status: str | None
    changed: dict[str, Any]
    leases_revoked: int | None = None
    agent_resume: AgentResume | None = None


class TicketContext(msgspec.Struct, frozen=True, kw_only=True):
    ticket: TicketDetail
    notes: list[Note]
    attachments: list[Attachment]
    change_requests: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    postmortems: list[dict[str, Any]]
    related_tickets: list[Ticket]
    knowledge_articles: list[dict[str, Any]]
    workflows: list[dict[str, Any]]
    skills: list[dict[str, Any]]
    access_requests: list[dict[str, Any]]
