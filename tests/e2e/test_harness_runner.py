"""Each real agent CLI, end to end through the runner of a real `opsgate serve`.

ticket -> `POST /api/tickets/{id}/assign-agent` with the harness -> the runner
starts the CLI, pointed at the fake model server -> the model makes it `curl`
a note onto its ticket with its agent token and write a done checkpoint ->
the task completes, the note is on the ticket with the agent as author.
Everything listens on 127.0.0.1. The CLIs come from scripts/install-agent-clis.sh.
"""

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from opsgate.testing.fake_model import FakeModelServer, final, shell
from opsgate.testing.processes import FAST_RUNNER_ENV, OpsgateProcess, base_env, free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
AGENT_CLIS = REPO / ".tools" / "agent-clis"
MODEL = "fake-model"
MODEL_KEY = "sk-model-key-must-not-reach-the-agent-shell"
NOTE = "Checked the mail gateway logs: no further deliveries."
AGENT_SCRIPT = (
    'curl -sS -f -X POST "$OPSGATE_API_URL/api/tickets/$OPSGATE_TICKET_ID/notes" '
    '-H "Authorization: Bearer $OPSGATE_AGENT_TOKEN" -H "Content-Type: application/json" '
    f"-d '{{\"body\": \"{NOTE}\", \"visibility\": \"internal\"}}' "
    "&& env > agent-env.txt "
    "&& printf '%s' '{\"status\": \"done\", \"progress\": 100, \"summary\": \"note posted\"}' > checkpoint.json"
)

BINARIES = {
    "claude-code": ("CLAUDE_CODE_BIN", AGENT_CLIS / "node" / "node_modules" / ".bin" / "claude"),
    "codex": ("CODEX_BIN", AGENT_CLIS / "node" / "node_modules" / ".bin" / "codex"),
    "hermes": ("HERMES_BIN", AGENT_CLIS / "hermes-venv" / "bin" / "hermes"),
}


def _binary(harness: str) -> tuple[str, str]:
    var, default = BINARIES[harness]
    path = os.environ.get(var) or str(default)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{harness} is not installed at {path}: run scripts/install-agent-clis.sh or set {var}")
    return var, path


def _bwrap() -> str | None:
    found = shutil.which("bwrap")
    if found:
        return found
    vendored = sorted((AGENT_CLIS / "node" / "node_modules" / "@openai").glob("codex-linux-*/vendor/*/codex-resources/bwrap"))
    return str(vendored[0]) if vendored and os.access(vendored[0], os.X_OK) else None


@pytest.fixture
def work_root(request):
    """Under the repo's .tools/ (opsgate's own data dir in production), never the system temp dir."""
    name = "".join(ch if ch.isalnum() else "-" for ch in request.node.name)[:40]
    path = REPO / ".tools" / "test-work" / f"runner-{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    if not os.environ.get("OPSGATE_KEEP_TEST_WORK"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("harness", ["claude-code", "codex", "hermes"])
async def test_real_cli_through_the_runner(harness, db_url, work_root, make_token):
    var, binary = _binary(harness)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = await make_token("platform-admin")
    headers = {"Authorization": f"Bearer {token}"}
    with FakeModelServer([shell(AGENT_SCRIPT), final("Note posted and checkpoint written.")], model=MODEL) as fake:
        env = base_env(
            OPSGATE_DATABASE_URL=db_url, OPSGATE_WORK_DIR=str(work_root / "work"),
            OPSGATE_DATA_DIR=str(work_root / "data"), OPSGATE_PORT=str(port), OPSGATE_RUNNER="1",
            OPSGATE_PLUGINS=harness, AGENT_LLM_BASE_URL=fake.url, AGENT_LLM_API_KEY=MODEL_KEY,
            **{var: binary}, **FAST_RUNNER_ENV, CLAUDE_CODE_MAX_RETRIES="1", CODEX_MAX_RETRIES="1",
        )
        bwrap = _bwrap()
        if harness == "claude-code" and bwrap:
            env["CLAUDE_CODE_BWRAP"] = bwrap
        with OpsgateProcess("serve", env=env, log_path=work_root / "serve.log") as server:
            server.wait_http(f"{base}/health")
            async with httpx.AsyncClient(base_url=base, headers=headers, trust_env=False, timeout=30) as http:
                ticket = (await http.post("/api/tickets", json={
                    "title": "Phishing follow-up", "description": "Confirm no further deliveries."})).json()
                r = await http.post(f"/api/tickets/{ticket['id']}/assign-agent",
                                    json={"harness": harness, "model": MODEL,
                                          "prompt": "Post a note on your ticket, then mark the task done."})
                assert r.status_code == 201, r.text
                agent_id, task_id = r.json()["agent"]["id"], r.json()["task"]["id"]
                deadline = time.monotonic() + 90
                task = None
                while time.monotonic() < deadline:
                    tasks = (await http.get("/api/agents/tasks", params={"agent_id": agent_id})).json()["tasks"]
                    task = tasks[0]
                    if task["status"] not in ("queued", "running"):
                        break
                    await _sleep(0.2)
                logs = (await http.get(f"/api/agents/tasks/{task_id}/logs")).json()
                detail = f"task: {task}\n--- output ---\n{logs['content'][-4000:]}\n{server.describe()}"
                assert task["status"] == "completed", detail
                assert task["progress"] == 100 and task["status_reason"] == "note posted", detail

                context = (await http.get(f"/api/tickets/{ticket['id']}/context")).json()
                notes = [n for n in context["notes"] if n["body"] == NOTE]
                assert len(notes) == 1, context["notes"]
                assert notes[0]["author"] == f"agent_{agent_id}" and notes[0]["source"] == "agent"
                assert notes[0]["agent_id"] == agent_id
                # completion does not change the ticket's status
                assert context["ticket"]["status"] == ticket["status"]
                agent = (await http.get(f"/api/agents/{agent_id}")).json()
                assert agent["agent"]["status"] == "completed"
                assert logs["source"] == "file"
                if harness != "hermes":  # `hermes -z` prints only its final answer, after the done checkpoint
                    assert logs["bytes"] > 0
                    assert agent["progress"], "the harness's parsed output is stored as progress"
        assert server.proc.returncode == 0, server.describe()
        requests = fake.model_requests()
        assert requests and all(req.model == MODEL for req in requests)
    work = work_root / "work" / "agents" / str(agent_id)
    agent_env = (work / "agent-env.txt").read_text()
    assert MODEL_KEY not in agent_env
    assert f"OPSGATE_TICKET_ID={ticket['id']}" in agent_env and f"OPSGATE_TASK_ID={task_id}" in agent_env
    assert f"OPSGATE_API_URL={base}" in agent_env
    assert json.loads((work / "checkpoint.json").read_text())["status"] == "done"
    conn = await asyncpg.connect(db_url)
    try:
        live = await conn.fetchval("SELECT count(*) FROM agent_tokens WHERE agent_id = $1 AND revoked_at IS NULL",
                                   agent_id)
        assert live == 0, "the agent's token stops working when its task ends"
    finally:
        await conn.close()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
