"""Resume on approval: one continuation task, or a steering event for an agent that still runs.

Called inside the approving transaction. The linked agent's row is locked
first, so racing approvals of several gates of one agent serialise: the first
queues the continuation (`opsgate.agents.service.queue_continuation`, which the
runner's one-active-task-per-ticket-and-type index backs), the others find the
agent queued and deliver a steering event instead.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncpg import Connection

from opsgate.changes import repo
from opsgate.changes.schemas import ResumeOutcome
from opsgate.errors import Conflict, NotFound
from opsgate.events import repo as events

log = logging.getLogger(__name__)

LIVE = frozenset({"queued", "running"})
RESUMABLE = frozenset({"pending_approval", "awaiting_access", "awaiting_user_response", "blocked", "completed",
                       "failed"})


async def after_approval(conn: Connection, gate: dict[str, Any], *, note: str, note_id: int,
                         approver: str) -> ResumeOutcome:
    """Queue exactly one continuation for a waiting agent, or steer a live one; never both, never two."""
    agent_id = gate["agent_id"]
    if agent_id is None:
        return ResumeOutcome(action="none", detail="the gate is not linked to an agent")
    agent = await repo.lock_agent(conn, agent_id)
    if agent is None:
        return ResumeOutcome(action="none", detail=f"agent {agent_id} does not exist", agent_id=agent_id)
    if agent["status"] in LIVE:
        event_id = await repo.add_steering_event(conn, agent_id, gate["ticket_id"], note_id, "approval", note,
                                                 approver)
        if event_id is not None:
            await events.emit(conn, "agent_steering_created", actor="control-plane", ticket_id=gate["ticket_id"],
                              agent_id=agent_id, category="agent",
                              payload={"steering_event_id": event_id, "note_id": note_id, "agent_id": agent_id,
                                       "ticket_id": gate["ticket_id"], "change_id": gate["id"]})
        return ResumeOutcome(action="steered", detail=f"agent {agent_id} is {agent['status']}; the approval was "
                             "delivered as a steering event", agent_id=agent_id, steering_event_id=event_id)
    if agent["status"] not in RESUMABLE:
        return ResumeOutcome(action="none", detail=f"agent {agent_id} is {agent['status']}; it is not resumed",
                             agent_id=agent_id)
    from opsgate.agents import service as agents

    try:
        task = await agents.queue_continuation(conn, agent_id, reason=f"change {gate['id']} approved by {approver}")
    except (Conflict, NotFound) as exc:
        log.info("no continuation queued", extra={"agent_id": agent_id, "change_id": gate["id"],
                                                  "reason": exc.detail})
        return ResumeOutcome(action="none", detail=exc.detail, agent_id=agent_id)
    log.info("continuation queued on approval", extra={"agent_id": agent_id, "change_id": gate["id"],
                                                       "task_id": task.id})
    return ResumeOutcome(action="queued_task", detail=f"agent {agent_id} resumes with task {task.id}",
                         task_id=task.id, agent_id=agent_id)
