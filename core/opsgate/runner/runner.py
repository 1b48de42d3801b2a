"""The runner: claim queued tasks, start their harness processes, supervise them, recover lost ones.

Coordination happens only through PostgreSQL:

- claims take a transaction-scoped advisory lock, count the running tasks of
  every runner, and take at most `max_concurrent_agents - running` queued rows
  with `FOR UPDATE SKIP LOCKED` (0 pauses new starts; running tasks go on);
- each runner heartbeats its `runners` row and renews the lease of its tasks;
  a task it supervises that it no longer owns (stopped by an operator,
  reported, recovered by another runner) has its process group killed;
- a running task whose lease ran out and whose runner's heartbeat lapsed is
  failed or re-queued (`OPSGATE_RUNNER_RECOVERY`) by any runner, at start-up
  and on every heartbeat;
- every status write is `... WHERE status = 'running' AND runner_id = <me>`,
  so an operator's `stopped` is never overwritten by a later exit or failure.

Wake-ups come from the event listener (NOTIFY); a poll interval covers a
missed notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from opsgate.agents import vocab
from opsgate.agents.config import RuntimeConfig
from opsgate.audit import repo as audit
from opsgate.agents import release
from opsgate.auth.service import mint_agent_token
from opsgate.events import repo as events
from opsgate.events.listener import EventListener
from opsgate.plugins import PluginHost
from opsgate.protocols import DomainEvent, Harness, HarnessRun
from opsgate.runner import repo as q
from opsgate.runner import workdir
from opsgate.runner.process import AgentProcess, kill_orphans
from opsgate.settings import Settings
from opsgate.steering import files as steering_files
from opsgate.steering import service as steering
from opsgate.tickets import repo as tickets_repo

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between supervision checks of one task
FLUSH_SECONDS = 1.0  # output tail and progress events are written at most this often
TOKEN_MARGIN_SECONDS = 600
LOST_TRACK_SECONDS = 10.0  # a claim not yet supervised after this long was lost
DEFAULT_MAX_CONCURRENT = RuntimeConfig().max_concurrent_agents
_json = msgspec.json.Encoder()

# Events that may free or need a slot.
_WAKE_KINDS = frozenset({"agent_spawned", "agent_task_queued", "agent_config_updated", "agent_task_finished",
                         "agent_stopped", "agent_terminated", "agent_status_updated", "agent_task_recovered"})
_END_KINDS = frozenset({"agent_stopped", "agent_terminated", "agent_status_updated", "agent_task_recovered"})
_STEER_KINDS = frozenset({"agent_steering_created", "agent_steering_acked"})

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


def _jsonable(value: Any) -> str:
    try:
        return _json.encode(value).decode()
    except (TypeError, ValueError):
        return "{}"


def _earlier_attempt(kind: str, payload: dict[str, Any], run: TaskRun) -> bool:
    """Whether a recovery event is about an earlier attempt of a task this runner claimed again.

    A re-queued task can be claimed again before the event of its recovery
    reaches this runner; that event must not end the new attempt.
    """
    attempt = payload.get("attempt")
    return kind == "agent_task_recovered" and isinstance(attempt, int) and attempt != run.row.get("attempts")


class TaskRun:
    """The supervision of one claimed task on this runner."""

    def __init__(self, runner: Runner, row: dict[str, Any], token: str) -> None:
        self.runner = runner
        self.row = row
        self.id: int = row["id"]
        self.agent_id: int = row["agent_id"]
        self.ticket_id: int | None = row["ticket_id"]
        self.token = token
        self.process: AgentProcess | None = None
        self.layout = workdir.layout_for(runner.settings.work_dir, self.agent_id, self.id)
        self.ended = asyncio.Event()  # set when the task left `running` outside this supervision
        self.end_reason = ""
        self.steer = asyncio.Event()
        self.shutdown = False
        self._steer_sig: tuple[Any, ...] | None = None
        self._checkpoint_mtime = 0.0
        self._last_flush = 0.0
        self._last_steer_sync = 0.0
        self.started_monotonic = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runner.pool

    @property
    def settings(self) -> Settings:
        return self.runner.settings

    def external_end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.end_reason = reason
            self.ended.set()

    # -- the run ----------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            if self.process is not None:
                await self.process.terminate(0)
            raise
        except Exception as exc:
            log.exception("task supervision failed", extra={"task_id": self.id, "agent_id": self.agent_id})
            if self.process is not None:
                await self.process.terminate(0)
            with contextlib.suppress(*DB_ERRORS):
                await self.finish("failed", f"runner error: {type(exc).__name__}: {exc}"[:500],
                                  self.process.returncode if self.process else None)
        finally:
            self.runner.task_done(self)

    async def _run(self) -> None:
        harness = self.runner.harnesses.get(self.row["harness"])
        if harness is None:
            await self.finish("failed", f"harness {self.row['harness']!r} is not available on runner "
                                        f"{self.runner.id}", None)
            return
        base_url = self.row["model_base_url"] or self.settings.agent_llm_base_url
        if not base_url and getattr(harness, "requires_model_endpoint", True):
            await self.finish("failed", "no model endpoint configured: set AGENT_LLM_BASE_URL "
                                        "(or a profile's model_base_url)", None)
            return
        async with self.pool.acquire() as conn:
            ticket = await tickets_repo.get_ticket(conn, self.ticket_id) if self.ticket_id else None
            notes = await tickets_repo.list_notes(conn, self.ticket_id, workdir.MAX_NOTES) if self.ticket_id else []
        lay = self.layout
        await asyncio.to_thread(workdir.prepare, lay, task=self.row, ticket=ticket, notes=notes,
                                api_url=self.settings.api_url)
        run = HarnessRun(
            task_id=self.id, agent_id=self.agent_id, ticket_id=self.ticket_id, work_dir=str(lay.root),
            state_dir=str(lay.state_dir), prompt=self.row["prompt"], prompt_file=str(lay.prompt_file),
            model=self.row["model"], model_base_url=base_url, model_api_key=self.settings.agent_llm_api_key,
            api_url=self.settings.api_url, agent_token=self.token)
        try:
            command = harness.build_command(run)
            await asyncio.to_thread(workdir.write_files, lay.root, dict(command.files))
            self.process = await AgentProcess.start(
                list(command.argv), env=dict(command.env), cwd=lay.root, log_path=lay.log_path,
                tail_bytes=self.settings.runner_output_tail_bytes, parse_line=harness.parse_line)
        except Exception as exc:  # a harness bug, a missing binary, an unwritable work dir
            log.warning("task %s could not start: %s", self.id, exc, extra={"task_id": self.id})
            await self.finish("failed", f"could not start {self.row['harness']}: {type(exc).__name__}: {exc}"[:500],
                              None)
            return
        self.started_monotonic = time.monotonic()
        async with self.pool.acquire() as conn:
            still_mine = await conn.fetchval(q.TASK_STARTED, self.id, self.runner.id, self.process.pid, str(lay.root),
                                             str(lay.log_path))
        if still_mine is None:  # stopped between the claim and the start
            await self.process.terminate(0)
            await self._record_exit()
            return
        log.info("task started", extra={"task_id": self.id, "agent_id": self.agent_id, "pid": self.process.pid,
                                        "harness": self.row["harness"]})
        # Steering that arrived between spawn and start (or for an earlier task of the agent): mirrored now,
        # long before any CLI has booted far enough to read it.
        await self.sync_steering(force=True)
        await self._supervise(harness)

    async def _supervise(self, harness: Harness) -> None:
        proc = self.process
        assert proc is not None
        exited = asyncio.ensure_future(proc.wait())
        timeout_at = self.started_monotonic + self.row["timeout_minutes"] * 60
        stall = self.settings.runner_stall_seconds
        try:
            while not exited.done():
                waiters = {exited, asyncio.ensure_future(self.ended.wait()), asyncio.ensure_future(self.steer.wait())}
                done, pending = await asyncio.wait(waiters, timeout=TICK, return_when=asyncio.FIRST_COMPLETED)
                for fut in pending:
                    if fut is not exited:
                        fut.cancel()
                if self.ended.is_set() or self.shutdown:
                    break
                if exited.done():
                    break
                now = time.monotonic()
                if await self._check_checkpoint():
                    return
                if now >= timeout_at:
                    await self._end_by_runner("timeout", f"timed out after {self.row['timeout_minutes']} minutes")
                    return
                if stall > 0 and now - proc.last_output > stall:
                    await self._end_by_runner("timeout", f"stalled: no output for {stall:g} seconds")
                    return
                if self.steer.is_set() or now - self._last_steer_sync > self.settings.runner_heartbeat_seconds:
                    self.steer.clear()
                    await self.sync_steering()
                if proc.dirty and now - self._last_flush >= FLUSH_SECONDS:
                    await self.flush()
            if self.shutdown:
                await proc.terminate(self.settings.runner_stop_grace_seconds)
                await self.flush(force=True)
                await self.runner.recover_own(self, "runner shut down")
                return
            if self.ended.is_set():
                log.info("task ended elsewhere; stopping its process", extra={"task_id": self.id,
                                                                              "reason": self.end_reason})
                await proc.terminate(self.settings.runner_stop_grace_seconds)
                await self.flush(force=True)
                await self._record_exit()
                return
            code = await exited
            await proc.drain()
            await self.flush(force=True)
            await self._on_exit(harness, code)
        finally:
            if not exited.done():
                exited.cancel()

    async def _check_checkpoint(self) -> bool:
        """Act on a changed checkpoint; True when the task ended because of it."""
        path = self.layout.checkpoint
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._checkpoint_mtime:
            return False
        self._checkpoint_mtime = mtime
        data = workdir.read_checkpoint(path)
        if data is None:
            return False
        status = str(data.get("status", "")).strip().lower()
        progress = _progress(data.get("progress"))
        summary = str(data.get("summary") or "")[:8000] or None
        async with self.pool.acquire() as conn:
            await conn.execute(q.TASK_CHECKPOINT, self.id, progress if progress is not None else 0, summary,
                               data, self.runner.id)
        if status in vocab.CHECKPOINT_DONE and progress == 100:
            await self._end_by_runner("completed", summary or "checkpoint done", progress=100)
            return True
        if status in vocab.WAIT_STATUSES:
            await self._end_by_runner(status, summary or f"checkpoint {status}")
            return True
        if status in vocab.CHECKPOINT_FAILED:
            await self._end_by_runner("failed", summary or "checkpoint failed")
            return True
        return False

    async def _end_by_runner(self, status: str, reason: str, *, progress: int | None = None) -> None:
        """Record the end first (compare-and-set), then stop the process."""
        proc = self.process
        assert proc is not None
        await self.flush()
        await self.finish(status, reason, None, progress=progress)
        await proc.terminate(self.settings.runner_stop_grace_seconds)
        await self.flush(force=True)
        await self._record_exit()

    async def _on_exit(self, harness: Harness, code: int) -> None:
        data = workdir.read_checkpoint(self.layout.checkpoint) or {}
        status = str(data.get("status", "")).strip().lower()
        progress = _progress(data.get("progress"))
        summary = str(data.get("summary") or "")[:8000] or None
        if status in vocab.WAIT_STATUSES:
            await self.finish(status, summary or f"checkpoint {status}", code, progress=progress)
            return
        if status in vocab.CHECKPOINT_DONE and progress == 100:
            await self.finish("completed", summary or "checkpoint done", code, progress=100)
            return
        if status in vocab.CHECKPOINT_FAILED:
            await self.finish("failed", summary or "checkpoint failed", code, progress=progress)
            return
        assert self.process is not None
        try:
            failure = harness.detect_failure(str(self.layout.root), code, self.process.tail_text())
        except Exception as exc:
            log.exception("harness detect_failure failed", extra={"task_id": self.id})
            failure = f"detect_failure raised {type(exc).__name__}: {exc}"
        if code == 0 and failure is None:
            await self.finish("completed", summary or "process exited 0", code, progress=progress)
        else:
            await self.finish("failed", failure or f"process exited {code}", code, progress=progress)

    async def finish(self, status: str, reason: str, exit_code: int | None, *, progress: int | None = None) -> bool:
        """running -> `status` for this task and its agent, tokens revoked; False when it was not ours any more."""
        agent_status = vocab.AGENT_STATUS_FOR_TASK[status]
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q.FINISH_TASK, self.id, self.runner.id, status, reason, exit_code, progress)
            if row is None:
                return False
            agent = await conn.fetchrow(q.AGENT_TO, self.agent_id, agent_status, reason)
            await release.release(conn, self.agent_id, f"task {self.id} {status}", agent_ended=False)
            payload = {"task_id": self.id, "agent_id": self.agent_id, "ticket_id": self.ticket_id, "status": status,
                       "agent_status": agent["status"] if agent else None, "reason": reason,
                       "exit_code": exit_code, "runner_id": self.runner.id}
            level = "info" if status in ("completed", *vocab.WAIT_STATUSES) else "warning"
            await audit.record(conn, actor=f"runner:{self.runner.id}", action="agent_task_finished", category="agent",
                               level=level, target_type="agent_task", target_id=self.id, ticket_id=self.ticket_id,
                               agent_id=self.agent_id, details=payload)
            await events.emit(conn, "agent_task_finished", actor=f"runner:{self.runner.id}",
                              ticket_id=self.ticket_id, agent_id=self.agent_id, payload=payload, category="agent",
                              level=level)
        log.info("task %s", status, extra={"task_id": self.id, "agent_id": self.agent_id, "reason": reason[:200]})
        if status == "completed":
            async with self.pool.acquire() as conn:
                await release.after_completed(conn, self.agent_id, self.id, reason)
        self.runner.wake()
        return True

    async def _record_exit(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            with contextlib.suppress(*DB_ERRORS):
                async with self.pool.acquire() as conn:
                    await conn.execute(q.RECORD_EXIT, self.id, self.process.returncode)

    async def flush(self, *, force: bool = False) -> None:
        """Write the output tail and new progress events."""
        proc = self.process
        if proc is None or (not proc.dirty and not force):
            return
        proc.dirty = False
        self._last_flush = time.monotonic()
        events_ = proc.take_events()
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(q.TASK_OUTPUT, self.id, proc.tail_text(), proc.bytes_total,
                                   _wall(proc.last_output_wall))
                if events_:
                    await conn.execute(q.INSERT_PROGRESS, self.id, [str(e.kind)[:32] for e in events_],
                                       [str(e.text).replace("\x00", "") for e in events_],
                                       [_jsonable(e.data).replace("\\u0000", "") for e in events_])
                    last = events_[-1]
                    await events.emit(conn, "agent_task_progress", actor=f"runner:{self.runner.id}",
                                      ticket_id=self.ticket_id, agent_id=self.agent_id, category="agent",
                                      level="debug", payload={"task_id": self.id, "agent_id": self.agent_id,
                                                              "events": len(events_), "kind": last.kind,
                                                              "text": str(last.text)[:500]})
        except DB_ERRORS as exc:
            proc.dirty = True
            proc.events[:0] = events_
            log.warning("could not store output of task %s: %s", self.id, exc)

    async def sync_steering(self, *, force: bool = False) -> None:
        """Relay missed steering notes, and mirror the agent's steering into its work dir when it changed."""
        self._last_steer_sync = time.monotonic()
        try:
            async with self.pool.acquire() as conn:
                await steering.backfill(conn, self.agent_id)
                rows = await steering.list_events(conn, self.agent_id)
                signature = tuple((r["id"], r["acknowledged_at"] is not None) for r in rows)
                if not force and signature == self._steer_sig:
                    return
                await asyncio.to_thread(steering_files.mirror, self.layout.root, self.agent_id, rows)
                self._steer_sig = signature
                await steering.mark_delivered(conn, [r["id"] for r in rows if r["delivered_at"] is None])
        except DB_ERRORS as exc:
            log.warning("steering sync of task %s failed: %s", self.id, exc)


def _progress(value: Any) -> int | None:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return None
    return max(0, min(100, number))


def _wall(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


class Runner:
    """Claims and supervises tasks in this process (inside `opsgate serve` or `opsgate worker`)."""

    def __init__(self, settings: Settings, host: PluginHost, pool: asyncpg.Pool, *,
                 listener: EventListener | None = None, kind: str = "serve") -> None:
        self.settings = settings
        self.host = host
        self.pool = pool
        self.listener = listener
        self.kind = kind
        self.hostname = socket.gethostname()
        self.id = f"{self.hostname}:{os.getpid()}:{secrets.token_hex(4)}"
        self.harnesses: dict[str, Harness] = host.harnesses()
        self.tasks: dict[int, TaskRun] = {}
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self.claims = 0

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Register, recover what lapsed runners left running, then claim and heartbeat."""
        Path(self.settings.work_dir).mkdir(parents=True, exist_ok=True)
        await self._heartbeat_row()
        await self.recover_lapsed()
        if self.listener is not None:
            self.listener.subscribe(self.on_event)
        self._loops = [asyncio.create_task(self._claim_loop(), name="opsgate-runner-claim"),
                       asyncio.create_task(self._heartbeat_loop(), name="opsgate-runner-heartbeat")]
        log.info("runner started", extra={"runner_id": self.id, "harnesses": sorted(self.harnesses)})
        self.wake()

    async def stop(self) -> None:
        """Stop claiming; stop every process and fail or re-queue its task (OPSGATE_RUNNER_RECOVERY)."""
        self._stopping = True
        if self.listener is not None:
            self.listener.unsubscribe(self.on_event)
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop
        runs = list(self.tasks.values())
        for run in runs:
            run.shutdown = True
            run.ended.set()
        pending = [run.task for run in runs if run.task is not None]
        if pending:
            await asyncio.wait(pending, timeout=self.settings.runner_stop_grace_seconds + 10)
        with contextlib.suppress(*DB_ERRORS):
            async with self.pool.acquire() as conn:
                await conn.execute(q.STOP_RUNNER, self.id)
        log.info("runner stopped", extra={"runner_id": self.id})

    def wake(self) -> None:
        self._wake.set()

    def task_done(self, run: TaskRun) -> None:
        self.tasks.pop(run.id, None)
        self.wake()

    # -- events -------------------------------------------------------------

    def on_event(self, event: DomainEvent) -> None:
        kind = event.kind
        if kind in _WAKE_KINDS:
            self.wake()
        if kind in _END_KINDS:
            ids = event.payload.get("task_ids") or []
            if kind == "agent_task_recovered":
                ids = [event.payload.get("task_id")]
            for task_id in ids:
                run = self.tasks.get(task_id) if isinstance(task_id, int) else None
                if run is not None and not _earlier_attempt(kind, event.payload, run):
                    run.external_end(f"{kind}: {event.payload.get('reason') or ''}".strip())
        if kind == "ticket_note_added" and event.payload.get("steer") and event.ticket_id is not None:
            for run in self.tasks.values():
                if run.ticket_id == event.ticket_id:
                    run.steer.set()
        elif kind in _STEER_KINDS and event.agent_id is not None:
            for run in self.tasks.values():
                if run.agent_id == event.agent_id:
                    run.steer.set()

    # -- claiming -------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.runner_poll_seconds)
            self._wake.clear()
            if self._stopping:
                break
            try:
                claimed = await self.claim()
            except DB_ERRORS as exc:
                log.warning("claim failed: %s", exc)
                await asyncio.sleep(1)
                continue
            for row, token in claimed:
                run = TaskRun(self, row, token)
                self.tasks[run.id] = run
                run.task = asyncio.create_task(run.run(), name=f"opsgate-task-{run.id}")
            if claimed:
                self.wake()  # there may be more slots and more queued work

    async def claim(self) -> list[tuple[dict[str, Any], str]]:
        """Claim as many queued tasks as the global and local limits allow, in one transaction."""
        if not self.harnesses:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q.CLAIM_LOCK)
            limit = await conn.fetchval(q.GET_MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT)
            counts = await conn.fetchrow(q.COUNT_RUNNING, self.id)
            slots = (limit if limit is not None else DEFAULT_MAX_CONCURRENT) - counts["total"]
            if self.settings.runner_max_local > 0:
                slots = min(slots, self.settings.runner_max_local - counts["mine"])
            if slots <= 0:
                return []
            rows = [dict(r) for r in await conn.fetch(q.CLAIM_TASKS, self.id, slots, self.hostname,
                                                      self.settings.runner_lease_seconds, sorted(self.harnesses))]
            if not rows:
                return []
            await conn.execute(q.MARK_AGENTS_RUNNING, [r["agent_id"] for r in rows])
            claimed = []
            for row in rows:
                token = await mint_agent_token(conn, agent_id=row["agent_id"], ticket_id=row["ticket_id"],
                                               task_id=row["id"],
                                               ttl_seconds=row["timeout_minutes"] * 60 + TOKEN_MARGIN_SECONDS)
                payload = {"task_id": row["id"], "agent_id": row["agent_id"], "ticket_id": row["ticket_id"],
                           "runner_id": self.id, "host": self.hostname, "attempt": row["attempts"],
                           "harness": row["harness"], "model": row["model"]}
                await events.emit(conn, "agent_task_started", actor=f"runner:{self.id}", ticket_id=row["ticket_id"],
                                  agent_id=row["agent_id"], payload=payload, category="agent")
                claimed.append((row, token))
        self.claims += len(claimed)
        log.info("claimed %d task(s)", len(claimed), extra={"runner_id": self.id,
                                                            "tasks": [r["id"] for r, _ in claimed]})
        return claimed

    # -- heartbeat and recovery -------------------------------------------------

    async def _heartbeat_row(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(q.UPSERT_RUNNER, self.id, self.hostname, os.getpid(), self.kind, len(self.tasks))

    async def _heartbeat_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.runner_heartbeat_seconds)
            try:
                await self.heartbeat()
                await self.recover_lapsed()
            except DB_ERRORS as exc:
                log.warning("runner heartbeat failed: %s", exc)

    async def heartbeat(self) -> None:
        """Heartbeat the runner row, renew task leases, stop processes of tasks no longer ours."""
        await self._heartbeat_row()
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(q.RENEW_LEASES, self.id, self.settings.runner_lease_seconds)
        owned = {r["id"] for r in rows}
        for task_id, run in list(self.tasks.items()):
            if task_id not in owned and run.process is not None and not run.ended.is_set():
                run.external_end("no longer owned by this runner")
        # Running in the database for this runner, but not supervised (its supervision died on a
        # database error): release it like a lapsed runner's task instead of renewing it forever.
        for row in rows:
            if row["id"] not in self.tasks and row["claimed_seconds_ago"] > LOST_TRACK_SECONDS:
                async with self.pool.acquire() as conn, conn.transaction():
                    await self._recover(conn, {"id": row["id"], "agent_id": row["agent_id"],
                                               "ticket_id": row["ticket_id"], "runner_id": self.id},
                                        self.settings.runner_recovery, "runner lost track of the task")

    async def recover_lapsed(self) -> int:
        """Fail or re-queue every running task whose runner's heartbeat lapsed; returns how many."""
        mode = self.settings.runner_recovery
        recovered = 0
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(q.LAPSED_TASKS, self.settings.runner_lease_seconds)
            for row in rows:
                if row["id"] in self.tasks:
                    continue
                reason = (f"runner {row['runner_id']} lost (no heartbeat for "
                          f"{self.settings.runner_lease_seconds:g}s)")
                if await self._recover(conn, dict(row), mode, reason):
                    recovered += 1
                    if row["host"] == self.hostname and row["pid"]:
                        killed = await asyncio.to_thread(kill_orphans, row["pid"], row["id"])
                        if killed:
                            log.info("killed %d orphaned process(es) of task %s", killed, row["id"])
        if recovered:
            log.warning("recovered %d task(s) of lapsed runners (%s)", recovered, mode)
            self.wake()
        return recovered

    async def _recover(self, conn: asyncpg.Connection, row: dict[str, Any], mode: str, reason: str) -> bool:
        status = "queued" if mode == "requeue" else "failed"
        task = await conn.fetchrow(q.RECOVER_TASK, row["id"], row["runner_id"], status,
                                   f"requeued: {reason}" if status == "queued" else reason)
        if task is None:
            return False
        await conn.fetchrow(q.AGENT_TO, row["agent_id"], status, reason)
        await release.release(conn, row["agent_id"], f"task {row['id']} recovered: {status}", agent_ended=False)
        payload = {"task_id": row["id"], "agent_id": row["agent_id"], "ticket_id": row["ticket_id"],
                   "status": status, "reason": reason, "previous_runner_id": row["runner_id"],
                   "recovered_by": self.id, "attempt": task["attempts"]}
        await audit.record(conn, actor=f"runner:{self.id}", action="agent_task_recovered", category="agent",
                           level="warning", target_type="agent_task", target_id=row["id"],
                           ticket_id=row["ticket_id"], agent_id=row["agent_id"], details=payload)
        await events.emit(conn, "agent_task_recovered", actor=f"runner:{self.id}", ticket_id=row["ticket_id"],
                          agent_id=row["agent_id"], payload=payload, category="agent", level="warning")
        return True

    async def recover_own(self, run: TaskRun, reason: str) -> None:
        """A task of this runner that it gives up (shutdown): fail or re-queue it like a lapsed one."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._recover(conn, {"id": run.id, "agent_id": run.agent_id, "ticket_id": run.ticket_id,
                                           "runner_id": self.id}, self.settings.runner_recovery, reason)
        except DB_ERRORS as exc:
            log.warning("could not release task %s on shutdown: %s", run.id, exc)

    # -- diagnostics ------------------------------------------------------------

    def tracked(self) -> list[dict[str, Any]]:
        """The processes this runner supervises."""
        out = []
        for run in self.tasks.values():
            proc = run.process
            out.append({"task_id": run.id, "agent_id": run.agent_id, "ticket_id": run.ticket_id,
                        "harness": run.row["harness"], "pid": proc.pid if proc else None,
                        "pgid": proc.pgid if proc else None, "alive": bool(proc and proc.returncode is None),
                        "output_bytes": proc.bytes_total if proc else 0,
                        "seconds_since_output": round(time.monotonic() - proc.last_output, 1) if proc else None,
                        "work_dir": str(run.layout.root)})
        return out
