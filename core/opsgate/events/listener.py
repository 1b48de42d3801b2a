"""The event listener: one dedicated LISTEN connection per process.

Every committed domain event is an `event_log` row plus `NOTIFY opsgate_events,
'<id>'`. The listener reads each notified row back and hands it to:

- callbacks (the runner: wake up for queued work, stop a process, refresh steering);
- queues (each WebSocket client of `GET /api/agents/ws`);
- the plugin host's `emit_event` fan-out (the `opsgate_event` hook), when enabled;
- the steering relay: a steering note becomes steering events for the ticket's live agents.

So every API replica and runner sees every event. If the LISTEN connection
drops, it reconnects and catches up from the last event id it handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from opsgate.db import sql
from opsgate.db.pool import connect
from opsgate.events.repo import CHANNEL
from opsgate.plugins import PluginHost
from opsgate.protocols import DomainEvent
from opsgate.settings import Settings

log = logging.getLogger(__name__)

_Q = sql.load(__package__, "listener.sql")
EVENTS_BY_ID = _Q["events_by_id"]
EVENTS_AFTER = _Q["events_after"]
LAST_EVENT_ID = _Q["last_event_id"]

CATCH_UP_LIMIT = 1000
QUEUE_SIZE = 1000
WATCH_SECONDS = 2.0

Callback = Callable[[DomainEvent], Any]


def _event(row: Any) -> DomainEvent:
    return DomainEvent(id=row["id"], kind=row["kind"], ticket_id=row["ticket_id"], agent_id=row["agent_id"],
                       actor=row["actor"], payload=row["payload"] or {}, created_at=row["created_at"])


class EventListener:
    """LISTEN on `opsgate_events` and dispatch each event to this process's consumers."""

    def __init__(self, settings: Settings, pool: asyncpg.Pool, *, host: PluginHost | None = None,
                 fan_out_plugins: bool = False, relay_steering: bool = True) -> None:
        self.settings = settings
        self.pool = pool
        self.host = host
        self.fan_out_plugins = fan_out_plugins and host is not None
        self.relay_steering = relay_steering
        self._conn: asyncpg.Connection | None = None
        self._ids: asyncio.Queue[int] = asyncio.Queue()
        self._callbacks: list[Callback] = []
        self._queues: set[asyncio.Queue[DomainEvent]] = set()
        self._plugin_queue: asyncio.Queue[DomainEvent] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_id = 0
        self._stopping = False
        self._channels: dict[str, Callable[[str], None]] = {}
        self.connected = asyncio.Event()

    # -- subscribers --------------------------------------------------------

    def subscribe(self, callback: Callback) -> None:
        """Call `callback(event)` for every event (sync; may return an awaitable, which is awaited)."""
        self._callbacks.append(callback)

    def unsubscribe(self, callback: Callback) -> None:
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def queue(self, maxsize: int = QUEUE_SIZE) -> asyncio.Queue[DomainEvent]:
        """A queue that receives every event; the oldest is dropped when a slow reader lets it fill."""
        q: asyncio.Queue[DomainEvent] = asyncio.Queue(maxsize=maxsize)
        self._queues.add(q)
        return q

    def drop_queue(self, q: asyncio.Queue[DomainEvent]) -> None:
        self._queues.discard(q)

    def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """Also LISTEN on `channel` (call before `start`): `callback(payload)` per notification, and
        `callback("")` on every (re)connect, since notifications sent meanwhile were lost."""
        self._channels[channel] = callback

    def _on_channel(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        callback = self._channels.get(channel)
        if callback is not None:
            callback(payload)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        async with self.pool.acquire() as conn:
            self._last_id = await conn.fetchval(LAST_EVENT_ID)
        await self._connect()
        self._tasks = [asyncio.create_task(self._consume(), name="opsgate-events-consume"),
                       asyncio.create_task(self._watch(), name="opsgate-events-watch")]
        if self.fan_out_plugins:
            self._tasks.append(asyncio.create_task(self._fan_out(), name="opsgate-events-plugins"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._disconnect()

    async def _connect(self) -> None:
        conn = await connect(self.settings.database_url or "", self.settings)
        await conn.add_listener(CHANNEL, self._on_notify)
        for channel, callback in self._channels.items():
            await conn.add_listener(channel, self._on_channel)
            callback("")
        self._conn = conn
        self.connected.set()

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        self.connected.clear()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.remove_listener(CHANNEL, self._on_notify)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._ids.put_nowait(int(payload))
        except ValueError:
            log.warning("ignoring a malformed event notification", extra={"payload": payload[:100]})

    async def _watch(self) -> None:
        """Reconnect a dropped LISTEN connection and catch up on what was missed meanwhile."""
        while not self._stopping:
            await asyncio.sleep(WATCH_SECONDS)
            conn = self._conn
            if conn is not None and not conn.is_closed():
                continue
            log.warning("event listener connection lost; reconnecting")
            await self._disconnect()
            try:
                await self._connect()
                async with self.pool.acquire() as db:
                    rows = await db.fetch(EVENTS_AFTER, self._last_id, CATCH_UP_LIMIT)
                for row in rows:
                    await self._dispatch(_event(row))
                log.info("event listener reconnected", extra={"caught_up": len(rows)})
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("event listener reconnect failed: %s", exc)

    async def _consume(self) -> None:
        while True:
            ids = [await self._ids.get()]
            while not self._ids.empty() and len(ids) < 500:
                ids.append(self._ids.get_nowait())
            try:
                async with self.pool.acquire() as conn:
                    rows = await conn.fetch(EVENTS_BY_ID, ids)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not read notified events %s: %s", ids[:10], exc)
                continue
            for row in rows:
                await self._dispatch(_event(row))

    async def _dispatch(self, event: DomainEvent) -> None:
        self._last_id = max(self._last_id, event.id)
        if self.relay_steering and event.kind == "ticket_note_added" and event.payload.get("steer"):
            await self._relay(event)
        for callback in list(self._callbacks):
            try:
                result = callback(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one consumer's bug must not starve the others
                log.exception("event callback failed", extra={"event_kind": event.kind})
        for q in list(self._queues):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
            q.put_nowait(event)
        if self.fan_out_plugins:
            try:
                self._plugin_queue.put_nowait(event)
            except asyncio.QueueFull:
                log.error("plugin event fan-out is behind; dropping event %s", event.id)

    async def _relay(self, event: DomainEvent) -> None:
        from opsgate.steering import service as steering

        note_id = event.payload.get("note_id")
        if not isinstance(note_id, int):
            return
        try:
            async with self.pool.acquire() as conn:
                await steering.relay_note(conn, note_id)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("steering relay of note %s failed: %s", note_id, exc)

    async def _fan_out(self) -> None:
        assert self.host is not None
        while True:
            event = await self._plugin_queue.get()
            await self.host.emit_event(event)
