"""Request and response shapes of the agent endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta

Short = Annotated[str, Meta(max_length=200)]
Prompt = Annotated[str, Meta(max_length=262144)]
Reason = Annotated[str, Meta(max_length=2000)]


# --- requests -----------------------------------------------------------------


class AssignAgent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/tickets/{id}/assign-agent`: every field optional."""

    model: Short | None = None
    harness: Annotated[str, Meta(max_length=64)] | None = None
    profile_id: Short | None = None
    prompt: Prompt | None = None


class SpawnAgent(AssignAgent, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/agents/spawn`: an agent for an existing ticket."""

    ticket_id: Annotated[int, Meta(ge=1)]
    task_type: Annotated[str, Meta(max_length=64)] = "ticket_resolution"


class CreateFromPrompt(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/agents/create-from-prompt`: a local ticket plus an ad hoc agent."""

    prompt: Prompt
    title: Annotated[str, Meta(max_length=500)] | None = None
    priority: str | int = "P3"
    ticket_class: Annotated[str, Meta(max_length=64)] = "UserRequest"
    owning_group: Short | None = None
    security_classification: Annotated[str, Meta(max_length=32)] = "internal"
    model: Short | None = None
    harness: Annotated[str, Meta(max_length=64)] | None = None
    profile_id: Short | None = None


class StopAgent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = "operator_stop"


class UnassignAgent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = "unassigned"


class RestartAgent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = "restarted"
    prompt: Prompt | None = None
    model: Short | None = None
    harness: Annotated[str, Meta(max_length=64)] | None = None


class WakeAgent(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Reason = "wake"
    prompt: Prompt | None = None


class AgentUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Legacy status update: a wait state, completed, failed, or running with progress."""

    status: Annotated[str, Meta(max_length=64)]
    reason: Reason | None = None
    progress: Annotated[int, Meta(ge=0, le=100)] | None = None
    summary: Annotated[str, Meta(max_length=8192)] | None = None


# --- responses ----------------------------------------------------------------


class TaskSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    status: str
    progress: int
    summary: str | None


class Agent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    ticket_id: int | None
    ticket_title: str | None = None
    ticket_status: str | None = None
    name: str
    status: str
    status_reason: str | None
    harness: str
    model: str
    profile_id: str | None
    task_type: str
    created_by: str
    replaces_agent_id: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    latest_task: TaskSummary | None = None


class Task(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    agent_id: int
    ticket_id: int | None
    type: str
    status: str
    status_reason: str | None
    harness: str
    model: str
    timeout_minutes: int
    created_by: str
    runner_id: str | None
    host: str | None
    attempts: int
    pid: int | None
    work_dir: str | None
    log_path: str | None
    exit_code: int | None
    progress: int
    summary: str | None
    checkpoint: dict[str, Any] | None
    output_bytes: int
    last_output_at: datetime | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    stop_requested_by: str | None
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    prompt: str | None = None


class SpawnResult(msgspec.Struct, frozen=True, kw_only=True):
    agent: Agent
    task: Task
    ticket_id: int | None
    model_repaired_from: str | None = None


class AgentList(msgspec.Struct, frozen=True, kw_only=True):
    agents: list[Agent]
    total: int
    limit: int
    offset: int


class TaskList(msgspec.Struct, frozen=True, kw_only=True):
    tasks: list[Task]
    limit: int
    offset: int


class ProgressItem(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    created_at: datetime
    kind: str
    text: str
    data: dict[str, Any]


class SteeringEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    agent_id: int
    ticket_id: int | None
    note_id: int | None
    kind: str
    body: str
    author: str
    source: str
    created_at: datetime
    delivered_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


class SteeringList(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: int
    events: list[SteeringEvent]
    pending: int


class AgentDetail(msgspec.Struct, frozen=True, kw_only=True):
    agent: Agent
    latest_task: Task | None
    tasks: list[Task]
    progress: list[ProgressItem]
    steering: list[SteeringEvent]
    changes: list[dict[str, Any]]
    audit: list[dict[str, Any]]


class AgentAction(msgspec.Struct, frozen=True, kw_only=True):
    """Answer of stop, unassign, wake, update."""

    agent: Agent
    action: str
    tasks: list[int] = msgspec.field(default_factory=list)
    task: Task | None = None


class RestartResult(msgspec.Struct, frozen=True, kw_only=True):
    previous: Agent
    replacement: SpawnResult


class TaskLogs(msgspec.Struct, frozen=True, kw_only=True):
    task_id: int
    agent_id: int
    status: str
    source: str  # file | database
    log_path: str | None
    content: str
    bytes: int
    truncated: bool
    progress: list[ProgressItem]


class AgentStats(msgspec.Struct, frozen=True, kw_only=True):
    agents: dict[str, int]
    tasks: dict[str, int]
    total_agents: int
    active_agents: int
    running_tasks: int
    queued_tasks: int
    completed_tasks: int
    average_duration_seconds: float | None
    average_completed_duration_seconds: float | None
    average_queue_wait_seconds: float | None


class ConfigView(msgspec.Struct, frozen=True, kw_only=True):
    """The editable runtime configuration, as stored (never a secret)."""

    active_profile: str | None
    profiles: dict[str, Any]
    route_assignments: dict[str, Any]
    max_concurrent_agents: int
    default_timeout_minutes: int
    default_harness: str | None
    default_model: str | None
    models: list[Any]
    version: int
    updated_at: datetime | None
    updated_by: str | None
    harnesses: list[str]


class ModelsView(msgspec.Struct, frozen=True, kw_only=True):
    models: list[dict[str, Any]]
    active_profile: str | None
    profiles: dict[str, Any]
    route_assignments: dict[str, Any]
    max_concurrent_agents: int
    default_timeout_minutes: int
    default_harness: str | None
    default_model: str | None
    harnesses: list[str]
    codex_auth_mode: str
    model_base_url_configured: bool


class RunnerHealth(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    configured_harness: str | None
    default_model: str | None
    model_api_url: str | None
    model_api: dict[str, Any]
    credentials: dict[str, Any]
    harnesses: dict[str, Any]
    codex_auth_mode: str
    codex_login_status: dict[str, Any]
    runners: list[dict[str, Any]]
    max_concurrent_agents: int
    runner_in_this_process: bool


class Processes(msgspec.Struct, frozen=True, kw_only=True):
    ps_path: str | None
    runner_id: str | None
    tracked: list[dict[str, Any]]
    processes: list[dict[str, Any]]
    running_tasks: list[dict[str, Any]]
