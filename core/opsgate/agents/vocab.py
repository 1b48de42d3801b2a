"""Agent and task vocabularies (the CHECK constraints of migration 0004 use the same lists)."""

from __future__ import annotations

from opsgate.errors import Invalid

AGENT_STATUSES: tuple[str, ...] = (
    "queued", "running", "pending_approval", "awaiting_access", "awaiting_user_response", "blocked",
    "completed", "failed", "stopped", "terminated",
)
TASK_STATUSES: tuple[str, ...] = (*AGENT_STATUSES, "timeout")
TASK_TYPES: tuple[str, ...] = ("ticket_resolution", "postmortem", "workflow_build", "workflow_rerun", "ad_hoc")

# A task holds the (ticket, type) slot while queued or running.
ACTIVE_TASK_STATUSES: tuple[str, ...] = ("queued", "running")
# The process is stopped and the agent waits for something outside (a gate, access, the requester).
WAIT_STATUSES: tuple[str, ...] = ("pending_approval", "awaiting_access", "awaiting_user_response", "blocked")
FINAL_AGENT_STATUSES: tuple[str, ...] = ("completed", "failed", "stopped", "terminated")
FINAL_TASK_STATUSES: tuple[str, ...] = (*FINAL_AGENT_STATUSES, "timeout")
# Not final: queued, running and the wait states. Such an agent receives steering.
LIVE_AGENT_STATUSES: tuple[str, ...] = tuple(s for s in AGENT_STATUSES if s not in FINAL_AGENT_STATUSES)

# What a task's final status makes of its agent.
AGENT_STATUS_FOR_TASK: dict[str, str] = {
    "completed": "completed", "failed": "failed", "stopped": "stopped", "terminated": "terminated",
    "timeout": "stopped", **{s: s for s in WAIT_STATUSES},
}

# Checkpoint statuses the runner acts on.
CHECKPOINT_DONE: frozenset[str] = frozenset({"done", "completed", "complete"})
CHECKPOINT_FAILED: frozenset[str] = frozenset({"failed", "error"})


def _one_of(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(values)


def agent_status(value: str, field: str = "status") -> str:
    v = value.strip().lower()
    if v not in AGENT_STATUSES:
        raise Invalid(field, f"unknown status {value!r}; must be {_one_of(AGENT_STATUSES)}")
    return v


def task_status(value: str, field: str = "status") -> str:
    v = value.strip().lower()
    if v not in TASK_STATUSES:
        raise Invalid(field, f"unknown status {value!r}; must be {_one_of(TASK_STATUSES)}")
    return v


def task_type(value: str, field: str = "task_type") -> str:
    v = value.strip().lower()
    if v not in TASK_TYPES:
        raise Invalid(field, f"unknown task type {value!r}; must be {_one_of(TASK_TYPES)}")
    return v


def csv_statuses(value: str | None, parse, field: str = "status") -> list[str] | None:
    """A comma list of statuses (None or empty: no filter)."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return [parse(p, field) for p in dict.fromkeys(parts)] or None
