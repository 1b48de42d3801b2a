"""A fake harness for runner tests: `FakeHarness` runs `fake_agent.py` with the interpreter running the tests.

Register it as a plugin module: `make_app(plugins=[("fake-harness", fake_harness)])`,
or in a subprocess `OPSGATE_PLUGIN_MODULES=fake-harness=opsgate.testing.fake_harness`.
The agent's behaviour is the `fake:` lines of the task prompt (see `fake_agent.py`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsgate.hookspecs import hookimpl
from opsgate.protocols import HarnessCommand, HarnessRun, ProgressEvent

NAME = "fake"
AGENT_SCRIPT = str(Path(__file__).with_name("fake_agent.py"))


class FakeHarness:
    """Starts `python fake_agent.py TASK.md`; progress lines are `EVENT {"kind", "text"}`."""

    name = NAME
    requires_model_endpoint = False  # it never calls a model

    def __init__(self, python: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.python = python or sys.executable
        env = dict(environ if environ is not None else os.environ)
        self._path = env.get("PATH") or "/usr/local/bin:/usr/bin:/bin"

    def build_command(self, run: HarnessRun) -> HarnessCommand:
        env = {
            "PATH": self._path,
            "HOME": os.path.join(run.state_dir, "home"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            **run.extra_env,
            "OPSGATE_API_URL": run.api_url,
            "OPSGATE_AGENT_ID": str(run.agent_id),
            "OPSGATE_TICKET_ID": "" if run.ticket_id is None else str(run.ticket_id),
            "OPSGATE_TASK_ID": str(run.task_id),
            "OPSGATE_AGENT_TOKEN": run.agent_token,
            "FAKE_MODEL": run.model,
        }
        files = {os.path.join(run.state_dir, "fake", "config.json"): json.dumps({"model": run.model}) + "\n"}
        return HarnessCommand(argv=[self.python, "-S", AGENT_SCRIPT, run.prompt_file], env=env, files=files)

    def parse_line(self, line: str) -> ProgressEvent | None:
        if line.startswith("EVENT "):
            try:
                data = json.loads(line[6:])
            except ValueError:
                return ProgressEvent(kind="error", text=f"unparsable event line: {line[:200]}")
            return ProgressEvent(kind=str(data.get("kind", "message")), text=str(data.get("text", "")),
                                 data={k: v for k, v in data.items() if k not in ("kind", "text")})
        if line.startswith("FAKE-FAILURE"):
            return ProgressEvent(kind="error", text=line[13:])
        return None

    def detect_failure(self, work_dir: str, exit_code: int, output_tail: str) -> str | None:
        for line in reversed(output_tail.splitlines()):
            if line.startswith("FAKE-FAILURE"):
                return f"fake agent reported: {line[13:]}"
        return None

    async def health(self) -> Mapping[str, Any]:
        return {"ok": True, "harness": NAME, "binary": self.python, "found": True, "version": "fake-1",
                "auth": {"mode": "none"}}


@hookimpl
def opsgate_harnesses() -> list[FakeHarness]:
    """The `fake` harness."""
    return [FakeHarness()]
