"""One harness process: started in its own process group with stdin closed, output streamed.

stdout and stderr go to one pipe; every byte is appended to the task's log
file, the last `tail_bytes` are kept for the database, and each line is
handed to the harness's `parse_line`. Stopping signals the whole group:
SIGTERM, a grace period, then SIGKILL (also after a normal exit, so nothing the
agent left in the background survives it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHUNK = 65536
MAX_LINE = 1_048_576


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def group_alive(pgid: int) -> bool:
    return signal_group(pgid, 0)


def kill_orphans(pgid: int, task_id: int) -> int:
    """SIGKILL the members of process group `pgid` that carry `OPSGATE_TASK_ID=<task_id>` (Linux /proc).

    Used when recovering a task of a dead runner on this host: the group
    outlived its runner; the environment check keeps a reused pgid safe.
    """
    marker = f"OPSGATE_TASK_ID={task_id}".encode()
    killed = 0
    proc = Path("/proc")
    if not proc.is_dir():
        return 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid:  # state, ppid, pgrp
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if marker in env:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


class AgentProcess:
    """A started harness process and the reader of its output."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path, tail_bytes: int,
                 parse_line: Callable[[str], Any]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.pgid = proc.pid  # start_new_session: the leader's pid is the group id
        self.log_path = log_path
        self.tail_bytes = tail_bytes
        self._parse_line = parse_line
        self.tail = bytearray()
        self.bytes_total = 0
        self.last_output = time.monotonic()
        self.last_output_wall = time.time()
        self.events: list[Any] = []  # parsed progress events not yet stored
        self.dirty = False
        self._partial = b""
        self._reader = asyncio.create_task(self._read(), name=f"opsgate-output-{self.pid}")

    @classmethod
    async def start(cls, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, tail_bytes: int,
                    parse_line: Callable[[str], Any]) -> AgentProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=str(cwd), env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, limit=CHUNK)
        return cls(proc, log_path, tail_bytes, parse_line)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        with open(self.log_path, "ab", buffering=0) as out:
            while True:
                chunk = await stream.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                self._take(chunk)
            if self._partial:
                self._line(self._partial)
                self._partial = b""

    def _take(self, chunk: bytes) -> None:
        self.bytes_total += len(chunk)
        self.last_output = time.monotonic()
        self.last_output_wall = time.time()
        self.tail += chunk
        if len(self.tail) > self.tail_bytes:
            del self.tail[: len(self.tail) - self.tail_bytes]
        self.dirty = True
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > MAX_LINE:  # a runaway line: parse what we have
            lines.append(self._partial)
            self._partial = b""
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        if not text.strip():
            return
        try:
            event = self._parse_line(text)
        except Exception:  # a harness bug must not stop the supervision
            log.exception("harness parse_line failed")
            return
        if event is not None:
            self.events.append(event)

    def tail_text(self) -> str:
        return self.tail.decode("utf-8", errors="replace").replace("\x00", "")

    def take_events(self) -> list[Any]:
        events, self.events = self.events, []
        return events

    async def wait(self) -> int:
        return await self.proc.wait()

    async def terminate(self, grace: float) -> int:
        """SIGTERM the group, wait up to `grace` seconds, then SIGKILL the group."""
        if self.proc.returncode is None:
            signal_group(self.pgid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout=grace)
            except TimeoutError:
                pass
        signal_group(self.pgid, signal.SIGKILL)
        code = await self.proc.wait()
        await self.drain()
        return code

    async def drain(self, timeout: float = 2.0) -> None:
        """Let the reader finish the pipe (kill what is left of the group first)."""
        signal_group(self.pgid, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout=timeout)
        except TimeoutError:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        except Exception:
            log.exception("output reader failed", extra={"pid": self.pid})
