"""What happens to everything an agent holds when its task or the agent itself ends.

One place, called by the runner (task finished, recovered) and by the agent
control paths (stop, unassign, reported end), so tokens and leases are always
revoked together in the ending transaction, and approved gates are
auto-completed after a completed task.
"""

from __future__ import annotations

import logging

import asyncpg
from asyncpg import Connection

from opsgate.auth.service import revoke_agent_tokens
from opsgate.changes.service import complete_agent_gates
from opsgate.leases.service import revoke_agent_leases

log = logging.getLogger(__name__)


async def release(conn: Connection, agent_id: int, reason: str, *, agent_ended: bool) -> None:
    """Revoke the agent's tokens and leases; call inside the transaction that ends the task or agent.

    `agent_ended` (stopped, terminated) also drops leases still pending
    approval; a finished task keeps them so an approval can still resume it.
    """
    await revoke_agent_tokens(conn, agent_id, reason[:200])
    await revoke_agent_leases(conn, agent_id, "agent_ended" if agent_ended else "task_finished")


async def after_completed(conn: Connection, agent_id: int, task_id: int, evidence: str) -> list[int]:
    """After a completed task has committed: auto-complete the agent's approved gates.

    Call outside the ending transaction: each gate completes in its own, so a
    gate that cannot be completed never undoes the task's completion; the
    change sweeper retries what is left.
    """
    try:
        return await complete_agent_gates(conn, agent_id, task_id=task_id, evidence=evidence)
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("auto-completion of gates failed; the sweeper will retry: %s", exc,
                    extra={"agent_id": agent_id, "task_id": task_id})
        return []
