"""Request and response shapes of the intake and RACI endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from opsgate.tickets.schemas import Attachment, Ticket, TicketDetail

Name = Annotated[str, Meta(max_length=200)]
Short = Annotated[str, Meta(max_length=200)]
Email = Annotated[str, Meta(max_length=320)]
Text = Annotated[str, Meta(max_length=2000)]
Title = Annotated[str, Meta(max_length=500)]
Message = Annotated[str, Meta(max_length=65536)]
Prompt = Annotated[str, Meta(max_length=8192)]
Keyword = Annotated[str, Meta(max_length=100)]
Keywords = Annotated[list[Keyword], Meta(max_length=200)]
Names = Annotated[list[Short], Meta(max_length=50)]
Answers = Annotated[dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=4000)]],
                    Meta(max_length=20)]
Priority = str | int


# --- RACI administration ----------------------------------------------------------


class GroupCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    description: Text = ""
    default_assignee: Short | None = None
    risk_level: Annotated[str, Meta(max_length=16)] = "medium"
    enabled: bool = True


class GroupUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change."""

    name: Name | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    default_assignee: Short | None | UnsetType = UNSET
    risk_level: Annotated[str, Meta(max_length=16)] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class RuleCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    intent: Annotated[str, Meta(max_length=64)]
    assignment_group: Name
    description: Text = ""
    keywords: Keywords = msgspec.field(default_factory=list)
    ticket_class: Annotated[str, Meta(max_length=64)] = "Incident"
    priority: Priority = "P3"
    responsible: Short | None = None
    accountable: Short | None = None
    consulted: Names = msgspec.field(default_factory=list)
    informed: Names = msgspec.field(default_factory=list)
    approval_required: bool = False
    approval_action: Short | None = None
    risk_level: Annotated[str, Meta(max_length=16)] = "medium"
    knowledge_tags: Names = msgspec.field(default_factory=list)
    auto_assign_agent: bool = False
    auto_agent_model: Short | None = None
    auto_agent_prompt: Prompt | None = None
    security_classification: Annotated[str, Meta(max_length=32)] = "internal"
    enabled: bool = True


class RuleUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change."""

    name: Name | UnsetType = UNSET
    intent: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET
    assignment_group: Name | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    keywords: Keywords | UnsetType = UNSET
    ticket_class: Annotated[str, Meta(max_length=64)] | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    responsible: Short | None | UnsetType = UNSET
    accountable: Short | None | UnsetType = UNSET
    consulted: Names | UnsetType = UNSET
    informed: Names | UnsetType = UNSET
    approval_required: bool | UnsetType = UNSET
    approval_action: Short | None | UnsetType = UNSET
    risk_level: Annotated[str, Meta(max_length=16)] | UnsetType = UNSET
    knowledge_tags: Names | UnsetType = UNSET
    auto_assign_agent: bool | UnsetType = UNSET
    auto_agent_model: Short | None | UnsetType = UNSET
    auto_agent_prompt: Prompt | None | UnsetType = UNSET
    security_classification: Annotated[str, Meta(max_length=32)] | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET


class RaciGroup(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    description: str
    default_assignee: str | None
    risk_level: str
    enabled: bool
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


class RaciRule(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    intent: str
    description: str
    keywords: list[str]
    ticket_class: str
    priority: str
    assignment_group: str
    responsible: str | None
    accountable: str | None
    consulted: list[str]
    informed: list[str]
    approval_required: bool
    approval_action: str | None
    risk_level: str
    knowledge_tags: list[str]
    auto_assign_agent: bool
    auto_agent_model: str | None
    auto_agent_prompt: str | None
    security_classification: str
    enabled: bool
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


class RaciConfig(msgspec.Struct, frozen=True, kw_only=True):
    groups: list[RaciGroup]
    rules: list[RaciRule]


# --- classification -----------------------------------------------------------------


class ClassifyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title
    message: Message = ""
    category: Annotated[str, Meta(max_length=100)] | None = None


class ClarifyRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title
    message: Message = ""
    category: Annotated[str, Meta(max_length=100)] | None = None
    answers: Answers = msgspec.field(default_factory=dict)


class Raci(msgspec.Struct, frozen=True, kw_only=True):
    responsible: str | None
    accountable: str | None
    consulted: list[str]
    informed: list[str]


class CandidateOut(msgspec.Struct, frozen=True, kw_only=True):
    rule_id: int
    rule_name: str
    intent: str
    assignment_group: str
    score: float
    matched_keywords: list[str]


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request goes and why; `matched` is false when it fell back to `general`."""

    rule_id: int
    rule_name: str
    intent: str
    matched: bool
    confidence: float
    low_confidence: bool
    score: float
    reason: str
    matched_keywords: list[str]
    ticket_class: str
    priority: str
    assignment_group: str
    default_assignee: str | None
    approval_required: bool
    approval_action: str | None
    risk_level: str
    security_classification: str
    auto_assign_agent: bool
    raci: Raci
    knowledge_tags: list[str]
    candidates: list[CandidateOut]
    related_tickets: list[Ticket]
    related_knowledge: list[dict[str, Any]]


class QuestionOut(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    question: str
    reason: str


class Clarification(msgspec.Struct, frozen=True, kw_only=True):
    needed: bool
    questions: list[QuestionOut]
    missing_facts: list[str]
    confidence: float
    rule_name: str
    intent: str
    assignment_group: str


# --- submit and sessions --------------------------------------------------------------


class IntakeAttachment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Attachment metadata only; the bytes live in external storage (`storage_ref`)."""

    filename: Annotated[str, Meta(min_length=1, max_length=255)]
    content_type: Annotated[str, Meta(min_length=1, max_length=255)] = "application/octet-stream"
    size_bytes: Annotated[int, Meta(ge=0, le=2**53)] = 0
    storage_ref: Annotated[str, Meta(max_length=2048)] | None = None
    sha256: Annotated[str, Meta(pattern="^[0-9a-fA-F]{64}$")] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class SubmitRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    title: Title
    message: Message = ""
    category: Annotated[str, Meta(max_length=100)] | None = None
    answers: Answers = msgspec.field(default_factory=dict)
    priority: Priority | None = None
    security_classification: Annotated[str, Meta(max_length=32)] | None = None
    requester_name: Short | None = None
    requester_email: Email | None = None
    requester_phone: Annotated[str, Meta(max_length=64)] | None = None
    affected_user: Short | None = None
    affected_user_email: Email | None = None
    created_by: Short | None = None
    attachments: Annotated[list[IntakeAttachment], Meta(max_length=50)] = msgspec.field(default_factory=list)
    sync_provider: bool = True
    auto_assign: bool = True


class AutoAssignDecision(msgspec.Struct, frozen=True, kw_only=True):
    """What auto-assignment decided for one ticket, and why."""

    requested: bool
    decision: str  # assigned | skipped | not_requested
    reason_code: str
    reason: str
    matched: bool = False
    rule_id: int | None = None
    rule_name: str | None = None
    agent_id: int | None = None
    task_id: int | None = None
    note_id: int | None = None


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    required: bool
    action: str | None
    status: str  # not_required | pending | recorded
    change_request_id: int | None


class IntakeSession(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    created_at: datetime
    actor: str
    title: str
    message: str
    category: str | None
    requester_name: str | None
    requester_email: str | None
    answers: dict[str, Any]
    rule_id: int | None
    rule_name: str
    intent: str
    matched: bool
    confidence: float
    ticket_id: int | None
    classification_note_id: int | None
    attachment_ids: list[int]
    approval_required: bool
    approval_action: str | None
    approval_status: str
    change_request_id: int | None
    auto_assign_requested: bool
    auto_assignment: dict[str, Any] | None


class SessionList(msgspec.Struct, frozen=True, kw_only=True):
    sessions: list[IntakeSession]
    limit: int
    offset: int


class SubmitResult(msgspec.Struct, frozen=True, kw_only=True):
    session: IntakeSession
    ticket: TicketDetail
    classification: Classification
    attachments: list[Attachment]
    approval: Approval
    auto_assignment: AutoAssignDecision
    idempotent_replay: bool = False
