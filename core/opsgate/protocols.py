"""The objects plugins contribute, as typed protocols.

Contribution hooks (`opsgate_ticket_providers`, `opsgate_harnesses`, ...) return
objects satisfying these protocols; the core calls their async methods
directly (through `opsgate.plugins.call_plugin`, which applies the timeout and
turns unexpected exceptions into `ProviderError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A committed change, as published to `opsgate_event` observers and the WebSocket."""

    id: int
    kind: str
    ticket_id: int | None = None
    agent_id: int | None = None
    actor: str | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    created_at: datetime | None = None


# --- ticket providers -------------------------------------------------------


class ProviderTicket(msgspec.Struct, frozen=True, kw_only=True):
    """The canonical ticket as a provider sees it when creating or pushing."""

    id: int
    title: str
    description: str = ""
    ticket_class: str = "Incident"
    status: str = "new"
    priority: str = "P3"
    assignee: str | None = None
    assignee_team: str | None = None
    owning_group: str | None = None
    requester_name: str | None = None
    requester_email: str | None = None
    provider_ref: str | None = None
    provider_class: str | None = None
    marker: str = ""  # stable opsgate marker written into the remote record


class ProviderNote(msgspec.Struct, frozen=True, kw_only=True):
    """One case-log entry of a remote ticket."""

    key: str  # stable identity for de-duplication
    body: str
    author: str | None = None
    visibility: str = "user"  # user (public log) | internal (private log)
    created_at: datetime | None = None


class ProviderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A remote ticket as the provider reports it."""

    provider_class: str
    provider_ref: str
    title: str = ""
    description: str = ""
    status: str | None = None  # already mapped to an opsgate status, or None
    remote_status: str | None = None
    priority: str | None = None
    url: str | None = None
    updated_at: datetime | None = None
    notes: Sequence[ProviderNote] = ()
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


class ChangePage(msgspec.Struct, frozen=True, kw_only=True):
    """Records changed since a cursor, and the cursor to ask with next time."""

    records: Sequence[ProviderRecord]
    cursor: str | None
    more: bool = False  # True when more pages are ready now (ask again with `cursor`)


@runtime_checkable
class TicketProvider(Protocol):
    """An ITSM system that mirrors canonical tickets (iTop, ServiceNow, ...)."""

    name: str
    ticket_classes: Sequence[str]
    capabilities: Mapping[str, bool]

    def configured(self) -> bool:
        """True when the settings needed to talk to the system are present."""
        ...

    def external_url(self, provider_class: str, provider_ref: str) -> str | None:
        """A browser URL for the remote record, or None."""
        ...

    async def create(self, ticket: ProviderTicket) -> ProviderRecord:
        """Create the remote ticket; raise on failure."""
        ...

    async def find_by_marker(self, ticket_class: str, marker: str) -> ProviderRecord | None:
        """Find a remote ticket created earlier with this marker (a lost create reply)."""
        ...

    async def fetch(self, provider_class: str, provider_ref: str) -> ProviderRecord | None:
        """Read one remote ticket with its case-log entries, or None if it does not exist."""
        ...

    async def list_changed_since(self, cursor: str | None) -> ChangePage:
        """Remote tickets changed since `cursor` (None: everything)."""
        ...

    async def add_note(self, provider_class: str, provider_ref: str, body: str, visibility: str) -> None:
        """Append a case-log entry: visibility user/public to the public log, internal to the private log."""
        ...

    async def set_status(self, provider_class: str, provider_ref: str, status: str, reason: str, *,
                         close: bool) -> ProviderRecord:
        """Move the remote ticket towards the opsgate status (resolve, close, ...)."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """A small JSON-able health report (`{"ok": bool, ...}`)."""
        ...


# --- harnesses --------------------------------------------------------------


class HarnessRun(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a harness needs to build the command of one task."""

    task_id: int
    agent_id: int
    ticket_id: int | None
    work_dir: str
    state_dir: str  # per-task CLI state (config homes), under the work dir root
    prompt: str
    prompt_file: str
    model: str
    model_base_url: str  # the model proxy root (AGENT_LLM_BASE_URL or the profile's)
    model_api_key: str
    api_url: str
    agent_token: str
    extra_env: dict[str, str] = msgspec.field(default_factory=dict)


class HarnessCommand(msgspec.Struct, frozen=True, kw_only=True):
    """How to start a harness: argv, environment, files to write first."""

    argv: list[str]
    env: dict[str, str]
    files: dict[str, str] = msgspec.field(default_factory=dict)  # path -> content, written before start


class ProgressEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed line of harness output."""

    kind: str  # message | tool_call | tool_result | error | usage | final
    text: str = ""
    data: dict[str, Any] = msgspec.field(default_factory=dict)


@runtime_checkable
class Harness(Protocol):
    """An agent CLI (Hermes, Claude Code, Codex) the runner can start."""

    name: str

    def build_command(self, run: HarnessRun) -> HarnessCommand:
        """argv, env and config files for one task; pure, no I/O."""
        ...

    def parse_line(self, line: str) -> ProgressEvent | None:
        """Turn one line of output into a progress event, or None."""
        ...

    def detect_failure(self, work_dir: str, exit_code: int, output_tail: str) -> str | None:
        """A failure the exit code hides (error events, is_error), or None."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """Binary found, version, auth status; for runner-health."""
        ...


# --- tools and deploy targets ----------------------------------------------


@runtime_checkable
class ToolAdapter(Protocol):
    """An external tool reached with server-held credentials behind leases."""

    name: str
    lease_scopes: Sequence[str]

    async def health(self) -> Mapping[str, Any]:
        """Reachability and configuration of the tool, without secrets."""
        ...


class DeployRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An approved request to publish an artifact from an agent work dir."""

    change_id: int
    agent_id: int
    ticket_id: int | None
    work_dir: str
    source_dir: str
    slug: str
    public_base_url: str | None = None


class DeployResult(msgspec.Struct, frozen=True, kw_only=True):
    """Where the artifact was published."""

    relative_url: str
    public_url: str | None
    files: int
    bytes: int


@runtime_checkable
class DeployTarget(Protocol):
    """A place approved artifacts are published to (static sites, ...)."""

    name: str

    async def publish(self, request: DeployRequest) -> DeployResult:
        """Validate and publish atomically; raise `Invalid` for a refused tree."""
        ...

    async def health(self) -> Mapping[str, Any]:
        """Whether the target is usable."""
        ...
