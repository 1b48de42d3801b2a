"""Start a harness command the way the runner does, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class CliResult:
    """What a finished (or killed) CLI run produced."""

    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    def describe(self) -> str:
        """A readable dump for assertion messages."""
        return (f"exit={self.exit_code} timed_out={self.timed_out} duration={self.duration:.1f}s\n"
                f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}")


def run_cli(
    command: Any = None,
    *,
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str],
    timeout: float = 60.0,
) -> CliResult:
    """Write the command's files, then run it in its own process group with stdin closed.

    `command` may be an `opsgate.protocols.HarnessCommand` (argv, env, files);
    explicit `argv`/`env`/`files` override its fields. On timeout the group
    gets SIGTERM, then SIGKILL after two seconds.
    """
    argv = list(argv if argv is not None else command.argv)
    env = dict(env if env is not None else command.env)
    files = dict(files if files is not None else (getattr(command, "files", None) or {}))
    for path, content in files.items():
        target = Path(path) if os.path.isabs(path) else Path(cwd) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=os.fspath(cwd),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
    finally:
        # Leave nothing of the group behind (background children of the agent).
        _signal_group(proc.pid, signal.SIGKILL)
    return CliResult(argv=argv, exit_code=proc.returncode, stdout=stdout, stderr=stderr,
                     duration=time.monotonic() - started, timed_out=timed_out)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
