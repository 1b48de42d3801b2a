"""The real `codex` CLI against the fake model server, end to end (no runner)."""

from __future__ import annotations

import json
import os

import pytest

from opsgate.testing.fake_model import FakeModelServer, RecordingApi, final, run_cli, shell
from opsgate.testing.harness_e2e import AGENT_SCRIPT, AGENT_TOKEN, MODEL_KEY, e2e_run, layout_work_dir
from opsgate_harness_codex import CodexHarness, CodexSettings

pytestmark = pytest.mark.e2e

MODEL = "fake-codex-e2e"


def test_codex_runs_a_shell_command_end_to_end(codex_bin, work_root):
    work, state = layout_work_dir(work_root)
    harness = CodexHarness(CodexSettings(bin=codex_bin, max_retries=1),
                           environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
    with RecordingApi() as api, RecordingApi() as sentinel, \
            FakeModelServer([shell(AGENT_SCRIPT), final("Note posted and checkpoint written.")]) as fake:
        command = harness.build_command(e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                                                sentinel_url=sentinel.url))
        result = run_cli(command, cwd=work, timeout=120)

    assert result.exit_code == 0 and not result.timed_out, result.describe()
    notes = [c for c in api.calls if c.method == "POST"]
    assert len(notes) == 1, api.calls
    assert notes[0].path == "/api/tickets/7/notes"
    assert notes[0].bearer == AGENT_TOKEN
    assert notes[0].body == {"body": "Checked the host, all fine.", "visibility": "internal"}
    assert json.loads((work / "checkpoint.json").read_text()) == {"status": "done", "progress": 100,
                                                                   "summary": "note posted"}
    # shell_environment_policy.exclude kept the model key out of the agent's shell, not the token.
    agent_env = (work / "agent-env.txt").read_text()
    assert MODEL_KEY not in agent_env
    assert f"OPSGATE_AGENT_TOKEN={AGENT_TOKEN}" in agent_env
    assert "OPSGATE_TICKET_ID=7" in agent_env
    events = [e for e in map(harness.parse_line, result.lines) if e is not None]
    kinds = [e.kind for e in events]
    assert kinds[-1] == "final", kinds
    calls = [e for e in events if e.kind == "tool_call"]
    assert calls and "curl" in calls[0].text
    results = [e for e in events if e.kind == "tool_result"]
    assert results and results[0].data["exit_code"] == 0
    assert [e.text for e in events if e.kind == "message"][-1] == "Note posted and checkpoint written."
    assert harness.detect_failure(str(work), result.exit_code, result.stdout[-20000:]) is None
    seen = fake.model_requests()
    assert len(seen) >= 2
    for request in seen:
        assert request.model == MODEL
        assert request.path == "/v1/responses"
        assert request.authorization == f"Bearer {MODEL_KEY}"
    assert "exec_command" in seen[0].tool_names
    assert "MARKER-AGENTS-MD" in seen[0].text()
    assert sentinel.calls == []
    assert (state / "codex" / "config.toml").is_file()


def test_codex_model_failure_is_detected(codex_bin, work_root):
    work, state = layout_work_dir(work_root)
    harness = CodexHarness(CodexSettings(bin=codex_bin, max_retries=0),
                           environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    with RecordingApi() as api, RecordingApi() as sentinel, FakeModelServer(fail_status=500) as fake:
        command = harness.build_command(e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                                                sentinel_url=sentinel.url))
        result = run_cli(command, cwd=work, timeout=60)
    assert result.exit_code == 1 and not result.timed_out, result.describe()
    reason = harness.detect_failure(str(work), result.exit_code, result.stdout[-20000:])
    assert reason is not None and reason.startswith("codex turn failed"), result.describe()
    assert len(fake.model_requests()) == 1  # max_retries=0: no retry loop
    assert api.calls == [] and sentinel.calls == []


async def test_codex_health(codex_bin):
    harness = CodexHarness(CodexSettings(bin=codex_bin),
                           environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENT_LLM_API_KEY": "sk-x"})
    report = await harness.health()
    assert report["ok"] is True and report["version"] == "0.171.0", report
    assert "sk-x" not in json.dumps(report)
