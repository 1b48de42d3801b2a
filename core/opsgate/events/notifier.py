"""Wake-ups for committed events, sent off the request path.

A write commits its `event_log` rows first; listeners then need a
`NOTIFY opsgate_events, '<id>'` per row. A NOTIFY inside the writing
transaction holds PostgreSQL's notification queue lock from pre-commit until
the commit is flushed, which serialises every writer on the WAL flush, so the
wake-ups go out after the commit instead.

`notify_committed(conn, ids)` is the one call for that:

* inside a caller's transaction (a ticket write composed into a larger one)
  it queues a plain NOTIFY in that transaction, sent when it commits;
* during an HTTP request of an app whose `EventNotifier` runs, it hands the
  ids to the notifier and returns at once: the notifier sends them on its own
  connection, and ids that pile up while one NOTIFY is in flight go out
  together in the next (a burst of writes costs a few notify transactions,
  not one extra round trip per request);
* otherwise (CLI commands, background loops, tests without an app) it sends
  them on `conn` in a notify-only transaction with asynchronous commit.

A notifier that loses its connection keeps the ids and sends them once it has
reconnected; on shutdown it sends what is left. Listeners that were
disconnected meanwhile catch up by event id (`opsgate.events.listener`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from contextvars import ContextVar

import asyncpg

from opsgate.db import sql
from opsgate.db.pool import connect
from opsgate.events.repo import CHANNEL
from opsgate.settings import Settings

log = logging.getLogger(__name__)

_Q = sql.load(__package__)
NOTIFY_EVENTS = _Q["notify_events"]
NOTIFY_EVENTS_IN_TRANSACTION = _Q["notify_events_in_transaction"]

BATCH = 1000  # ids per NOTIFY statement
MAX_PENDING = 100_000  # ids kept while the database is unreachable; the oldest go first
RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
STOP_SECONDS = 5.0
COALESCE_SECONDS = 0.002  # after a wake-up, gather what else arrives before sending

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)

# The running notifier of the app serving the current request (set by the request middleware).
current_notifier: ContextVar[EventNotifier | None] = ContextVar("opsgate_event_notifier", default=None)


class EventNotifier:
    """Sends the NOTIFY of committed event ids from one dedicated connection per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pending: list[int] = []
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._stopping = False
        self.statements = 0  # NOTIFY statements sent (what the coalescing saves shows here)
        self.sent = 0  # ids sent

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def notify(self, event_ids: Sequence[int]) -> None:
        """Queue committed event ids for their NOTIFY; never blocks."""
        if not event_ids:
            return
        self._pending.extend(event_ids)
        overflow = len(self._pending) - MAX_PENDING
        if overflow > 0:
            del self._pending[:overflow]
            log.error("event notifier is behind; dropped %d wake-ups (listeners catch up on reconnect)", overflow)
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="opsgate-events-notify")

    async def stop(self) -> None:
        """Send what is queued (for up to a few seconds), then close the connection."""
        task, self._task = self._task, None
        self._stopping = True
        self._wake.set()
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=STOP_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                pass
        if self._pending:
            log.warning("event notifier stopped with %d wake-ups unsent", len(self._pending))
        await self._close()

    async def _run(self) -> None:
        while not (self._stopping and not self._pending):
            await self._wake.wait()
            if not self._stopping:
                await asyncio.sleep(COALESCE_SECONDS)
            self._wake.clear()
            try:
                await self._drain()
                self._failures = 0
            except _DB_ERRORS as exc:
                if self._stopping:
                    return
                delay = RETRY_SECONDS[min(self._failures, len(RETRY_SECONDS) - 1)]
                self._failures += 1
                log.warning("event notifier could not send %d wake-ups (retrying in %.1f s): %s",
                            len(self._pending), delay, exc)
                await self._close()
                await asyncio.sleep(delay)
                self._wake.set()

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[:BATCH]
            conn = await self._connection()
            await conn.execute(NOTIFY_EVENTS, CHANNEL, batch)
            del self._pending[:len(batch)]
            self.statements += 1
            self.sent += len(batch)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self.settings.database_url or "", self.settings)
        return self._conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)


async def notify_committed(conn: asyncpg.Connection, event_ids: Sequence[int]) -> None:
    """Wake listeners for these event ids of a write on `conn` (see the module docstring)."""
    if not event_ids:
        return
    ids = list(event_ids)
    if conn.is_in_transaction():
        await conn.execute(NOTIFY_EVENTS_IN_TRANSACTION, CHANNEL, ids)
        return
    notifier = current_notifier.get()
    if notifier is not None and notifier.running:
        notifier.notify(ids)
        return
    await conn.execute(NOTIFY_EVENTS, CHANNEL, ids)
