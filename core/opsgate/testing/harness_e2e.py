"""Test helpers for harness plugins: a task's work dir, the agent's script, `HarnessRun`s.

End-to-end tests run the real CLI against `opsgate.testing.fake_model`:

    from opsgate.testing.harness_e2e import AGENT_SCRIPT, e2e_run, layout_work_dir

    work, state = layout_work_dir(work_root)
    with RecordingApi() as api, RecordingApi() as sentinel, \\
            FakeModelServer([shell(AGENT_SCRIPT), final("Done.")]) as fake:
        run = e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                      sentinel_url=sentinel.url)
        result = run_cli(harness.build_command(run), cwd=work, timeout=120)

`build_command` tests use `unit_run(model=...)` and a host environment made
of `SERVER_ENV` plus the secrets the CLI itself would read, then check that none
of `SERVER_SECRETS` reaches argv, env or files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from opsgate.protocols import HarnessRun

__all__ = [
    "AGENT_BASE_ENV", "AGENT_SCRIPT", "AGENT_TOKEN", "MODEL_KEY", "SERVER_ENV", "SERVER_SECRETS",
    "TASK_PROMPT",
    "UNIT_STATE", "UNIT_WORK", "e2e_run", "installed_cli", "layout_work_dir", "proxy_sentinel_env",
    "scratch_work_root", "unit_run",
]

# --- end to end ------------------------------------------------------------------

MODEL_KEY = "sk-model-key-must-not-reach-the-shell"
AGENT_TOKEN = "agt-ticket-7-token"
TASK_PROMPT = "Post a note on ticket 7, then mark the task done."
# What the fake model tells the agent to run: post a note with its token, dump its
# environment to agent-env.txt (to check which secrets reached the shell) and mark
# the checkpoint done.
AGENT_SCRIPT = (
    'curl -sS -f -X POST "$OPSGATE_API_URL/api/tickets/$OPSGATE_TICKET_ID/notes" '
    '-H "Authorization: Bearer $OPSGATE_AGENT_TOKEN" -H "Content-Type: application/json" '
    "-d '{\"body\": \"Checked the host, all fine.\", \"visibility\": \"internal\"}' "
    "&& env > agent-env.txt "
    "&& printf '%s' '{\"status\": \"done\", \"progress\": 100, \"summary\": \"note posted\"}' > checkpoint.json"
)


def proxy_sentinel_env(sentinel_url: str) -> dict[str, str]:
    """Proxy variables pointing at a recording server, so any outbound connection
    the CLI tries (updates, telemetry) is recorded; 127.0.0.1 stays direct."""
    return {"HTTPS_PROXY": sentinel_url, "HTTP_PROXY": sentinel_url, "https_proxy": sentinel_url,
            "http_proxy": sentinel_url, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def layout_work_dir(root: Path) -> tuple[Path, Path]:
    """`root/work` as the runner lays it out (AGENTS.md with the marker
    `MARKER-AGENTS-MD`, TASK.md, a running checkpoint.json); returns it and
    `root/state` (not created)."""
    work = root / "work"
    work.mkdir()
    (work / "AGENTS.md").write_text("# opsgate agent instructions\nMARKER-AGENTS-MD: use $OPSGATE_API_URL.\n")
    (work / "TASK.md").write_text(TASK_PROMPT + "\n")
    (work / "checkpoint.json").write_text('{"status": "running", "progress": 0, "summary": ""}')
    return work, root / "state"


def e2e_run(work: Path, state: Path, *, model: str, model_base_url: str, api_url: str,
            sentinel_url: str) -> HarnessRun:
    """Task 31 of agent 12 on ticket 7 with `TASK_PROMPT`, `MODEL_KEY` and
    `AGENT_TOKEN`, and the proxy sentinel in `extra_env`."""
    return HarnessRun(
        task_id=31, agent_id=12, ticket_id=7, work_dir=str(work), state_dir=str(state),
        prompt=TASK_PROMPT, prompt_file=str(work / "TASK.md"),
        model=model, model_base_url=model_base_url, model_api_key=MODEL_KEY,
        api_url=api_url, agent_token=AGENT_TOKEN,
        # Test only: any outbound connection the CLI tries through a proxy is recorded.
        extra_env=proxy_sentinel_env(sentinel_url),
    )


@contextmanager
def scratch_work_root(parent: Path, prefix: str, test_name: str) -> Iterator[Path]:
    """A fresh dir `parent/<prefix>-<test name>-<random>`, removed afterwards
    unless `OPSGATE_KEEP_TEST_WORK` is set.

    Use a dir under the repository (e.g. `.tools/test-work`), not the system
    temp dir: sandboxes such as Codex's workspace-write break there.
    """
    name = "".join(c if c.isalnum() else "-" for c in test_name)[:40]
    path = parent / f"{prefix}-{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        if not os.environ.get("OPSGATE_KEEP_TEST_WORK"):
            shutil.rmtree(path, ignore_errors=True)


def installed_cli(env_var: str, default: Path | str, what: str) -> str:
    """The CLI named by `env_var`, else `default`; fails the test when it is not
    an executable file."""
    path = os.environ.get(env_var) or str(default)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{what} is not installed at {path}: run scripts/install-agent-clis.sh or set {env_var}")
    return path


# --- build_command ---------------------------------------------------------------

UNIT_WORK = "/var/lib/opsgate/work/agent-12"
UNIT_STATE = UNIT_WORK + "/.state"

# The opsgate server's environment, with secrets that must never reach the agent; add the
# variables your CLI would read on its own (e.g. its vendor's API key).
SERVER_ENV = {
    "PATH": "/opt/bin:/usr/bin:/bin",
    "HOME": "/root",
    "LANG": "en_US.UTF-8",
    "AGENT_LLM_BASE_URL": "http://proxy.internal:4000",
    "AGENT_LLM_API_KEY": "sk-host-model-key",
    "OPSGATE_DATABASE_URL": "postgresql://opsgate:db-password@db/opsgate",
    "OPSGATE_SECRET_KEY": "server-signing-secret",
}
SERVER_SECRETS = ["db-password", "server-signing-secret", "sk-host-model-key"]
# Every harness's agent environment has these names (plus its CLI's own).
AGENT_BASE_ENV = frozenset({"PATH", "HOME", "LANG", "OPSGATE_API_URL", "OPSGATE_AGENT_ID", "OPSGATE_TICKET_ID",
                            "OPSGATE_TASK_ID", "OPSGATE_AGENT_TOKEN"})


def unit_run(*, model: str, **overrides: Any) -> HarnessRun:
    """Task 31 of agent 12 on ticket 7 under `UNIT_WORK`, with the model key
    `sk-run-model-key` and the agent token `agt-run-token`; `overrides` replace
    any field."""
    values: dict[str, Any] = dict(
        task_id=31, agent_id=12, ticket_id=7, work_dir=UNIT_WORK, state_dir=UNIT_STATE,
        prompt="Add a note to the ticket.", prompt_file=UNIT_WORK + "/TASK.md",
        model=model, model_base_url="http://proxy.internal:4000/",
        model_api_key="sk-run-model-key", api_url="http://127.0.0.1:8000", agent_token="agt-run-token",
    )
    values.update(overrides)
    return HarnessRun(**values)
