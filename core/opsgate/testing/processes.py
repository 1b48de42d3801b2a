"""Run `opsgate serve` and `opsgate worker` as real subprocesses in tests (127.0.0.1 only).

    with OpsgateProcess("worker", env=worker_env(db_url, work_dir)) as worker:
        ...
        worker.kill()          # SIGKILL, like a crashed host process

Output goes to a log file (shown by `describe()` in assertion messages).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

OPSGATE = str(Path(sys.executable).parent / "opsgate")
FAKE_HARNESS_MODULE = "fake-harness=opsgate.testing.fake_harness"
FAST_RUNNER_ENV = {
    "OPSGATE_RUNNER_HEARTBEAT_SECONDS": "0.5",
    "OPSGATE_RUNNER_LEASE_SECONDS": "2",
    "OPSGATE_RUNNER_POLL_SECONDS": "0.5",
    "OPSGATE_RUNNER_STOP_GRACE_SECONDS": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without opsgate/model settings, plus `extra`."""
    drop = ("OPSGATE_", "AGENT_LLM_", "DATABASE_URL", "CODEX_", "CLAUDE_CODE_", "HERMES_", "ANTHROPIC_", "OPENAI_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # Test databases come migrated from the session's template: `serve` must not migrate again.
    env.update({"OPSGATE_LOG_FORMAT": "text", "OPSGATE_SECRET_KEY": "test-secret-key-not-for-production",
                "OPSGATE_MIGRATE": "off", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    env.update(extra)
    return env


def fake_worker_env(db_url: str, work_dir: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """A worker (or serve) that runs only the fake harness, with fast heartbeats."""
    return base_env(OPSGATE_DATABASE_URL=db_url, OPSGATE_WORK_DIR=str(work_dir), OPSGATE_PLUGINS="fake-harness",
                    OPSGATE_PLUGIN_MODULES=FAKE_HARNESS_MODULE, OPSGATE_DATA_DIR=str(Path(work_dir).parent / "data"),
                    **{**FAST_RUNNER_ENV, **extra})


class OpsgateProcess:
    """`opsgate <command>` in its own session; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, command: str, *, env: Mapping[str, str], log_path: str | os.PathLike[str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.command = command
        self.env = dict(env)
        self.args = args
        self.log_path = Path(log_path) if log_path else Path(self.env.get("OPSGATE_WORK_DIR", ".")).parent / (
            f"{command}-{time.monotonic_ns()}.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OpsgateProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen([OPSGATE, self.command, *self.args], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def describe(self) -> str:
        code = self.proc.poll() if self.proc else None
        return f"opsgate {self.command} (exit {code}):\n{self.output()[-6000:]}"

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not printed in {timeout}s\n{self.describe()}")

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=2, trust_env=False).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{url} not answering after {timeout}s\n{self.describe()}")

    def kill(self) -> None:
        """SIGKILL the opsgate process only (its agents, in their own groups, are orphaned like after a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> OpsgateProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
