"""The periodic sweeper: real expiry transitions, lease expiry and cascades, auto-completion catch-up,
deletion of expired idempotency keys.

Reads already treat an overdue gate or lease as expired; the sweeper turns
that into recorded transitions (audit, event, ticket note). Every step is a
compare-and-set, so several API replicas may sweep at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from opsgate.changes import repo, service
from opsgate.leases import service as leases
from opsgate.plugins import PluginHost
from opsgate.settings import Settings
from opsgate.tickets import service as tickets

log = logging.getLogger(__name__)

BATCH = 200


async def sweep_once(conn: asyncpg.Connection, host: PluginHost, *, batch: int = BATCH,
                     idempotency_ttl_hours: float | None = None) -> dict[str, int]:
    """One pass; returns what it did. With `idempotency_ttl_hours`, also deletes expired idempotency keys."""
    expired = 0
    for due in await repo.due_changes(conn, batch):
        if await service.expire(conn, host, due["id"], due["status"]):
            expired += 1
    completed = 0
    for row in await repo.completed_tasks_with_approved_gates(conn, batch):
        done = await service.complete_agent_gates(conn, row["agent_id"], task_id=row["task_id"],
                                                  evidence=row["summary"])
        completed += len(done)
    counts = {"changes_expired": expired, "changes_auto_completed": completed, **await leases.sweep(conn, batch)}
    if idempotency_ttl_hours is not None:
        counts["idempotency_keys_expired"] = await tickets.expire_idempotency_keys(conn, idempotency_ttl_hours)
    if any(counts.values()):
        log.info("sweep", extra=counts)
    return counts


class Sweeper:
    """Runs `sweep_once` every `OPSGATE_CHANGE_SWEEP_INTERVAL_SECONDS` inside `serve`'s lifespan."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, host: PluginHost) -> None:
        self._pool = pool
        self._interval = settings.change_sweep_interval_seconds
        self._host = host
        self._idempotency_ttl_hours = settings.idempotency_ttl_hours
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="opsgate-change-sweeper")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with self._pool.acquire() as conn:
                    await sweep_once(conn, self._host, idempotency_ttl_hours=self._idempotency_ttl_hours)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass is logged and retried next interval; the loop never dies
                log.exception("sweep failed")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
