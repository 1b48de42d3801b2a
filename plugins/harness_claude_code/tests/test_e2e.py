"""The real `claude` CLI against the fake model server, end to end (no runner)."""

from __future__ import annotations

import json
import os

import pytest

from opsgate.testing.fake_model import FakeModelServer, RecordingApi, final, run_cli, shell
from opsgate.testing.harness_e2e import AGENT_SCRIPT, AGENT_TOKEN, MODEL_KEY, e2e_run, layout_work_dir
from opsgate_harness_claude_code import ClaudeCodeHarness, ClaudeCodeSettings

pytestmark = pytest.mark.e2e

MODEL = "fake-claude-e2e"


def test_claude_code_runs_a_shell_command_end_to_end(claude_bin, bwrap_bin, work_root):
    work, state = layout_work_dir(work_root)
    harness = ClaudeCodeHarness(ClaudeCodeSettings(bin=claude_bin, bwrap=bwrap_bin, max_retries=1),
                                environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
    assert harness.env_scrub is True
    with RecordingApi() as api, RecordingApi() as sentinel, \
            FakeModelServer([shell(AGENT_SCRIPT), final("Note posted and checkpoint written.")]) as fake:
        command = harness.build_command(e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                                                sentinel_url=sentinel.url))
        result = run_cli(command, cwd=work, timeout=120)

    assert result.exit_code == 0 and not result.timed_out, result.describe()
    # The agent's command reached the (stand-in) opsgate API with the ticket token.
    notes = [c for c in api.calls if c.method == "POST"]
    assert len(notes) == 1, api.calls
    assert notes[0].path == "/api/tickets/7/notes"
    assert notes[0].bearer == AGENT_TOKEN
    assert notes[0].body == {"body": "Checked the host, all fine.", "visibility": "internal"}
    # It wrote the checkpoint in its work dir.
    assert json.loads((work / "checkpoint.json").read_text()) == {"status": "done", "progress": 100,
                                                                   "summary": "note posted"}
    # The model key was scrubbed from the shell tool's environment; the agent's token was not.
    agent_env = (work / "agent-env.txt").read_text()
    assert MODEL_KEY not in agent_env
    assert f"OPSGATE_AGENT_TOKEN={AGENT_TOKEN}" in agent_env
    assert "OPSGATE_TICKET_ID=7" in agent_env
    # Progress events parsed from the real output.
    events = [e for e in map(harness.parse_line, result.lines) if e is not None]
    kinds = [e.kind for e in events]
    assert kinds[0] == "message" and kinds[-1] == "final", kinds
    calls = [e for e in events if e.kind == "tool_call"]
    assert calls and calls[0].data["name"] == "Bash" and "curl" in calls[0].text
    assert any(e.kind == "tool_result" for e in events)
    assert events[-1].text == "Note posted and checkpoint written."
    assert harness.detect_failure(str(work), result.exit_code, result.stdout[-20000:]) is None
    # What the model server saw: the model id, both credential headers, the Bash tool, AGENTS.md.
    calls_seen = fake.model_requests()
    assert len(calls_seen) >= 2
    for request in calls_seen:
        assert request.model == MODEL
        assert request.path == "/v1/messages"
        assert request.headers.get("x-api-key") == MODEL_KEY or request.authorization == f"Bearer {MODEL_KEY}"
    assert "Bash" in calls_seen[0].tool_names
    assert "MARKER-AGENTS-MD" in calls_seen[0].text()
    # Nothing tried to leave 127.0.0.1, and per-task state stayed in the state dir.
    assert sentinel.calls == []
    assert (state / "claude").is_dir()


def test_claude_code_model_failure_is_detected(claude_bin, work_root):
    work, state = layout_work_dir(work_root)
    harness = ClaudeCodeHarness(ClaudeCodeSettings(bin=claude_bin, env_scrub="off", max_retries=0),
                                environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    with RecordingApi() as api, RecordingApi() as sentinel, FakeModelServer(fail_status=401) as fake:
        command = harness.build_command(e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                                                sentinel_url=sentinel.url))
        result = run_cli(command, cwd=work, timeout=60)
    assert not result.timed_out, result.describe()
    reason = harness.detect_failure(str(work), result.exit_code, result.stdout[-20000:])
    assert reason is not None and "401" in reason, result.describe()
    assert any(e.kind == "error" for e in map(harness.parse_line, result.lines) if e is not None)
    assert api.calls == [] and sentinel.calls == []


async def test_claude_code_health(claude_bin):
    harness = ClaudeCodeHarness(ClaudeCodeSettings(bin=claude_bin),
                                environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                         "AGENT_LLM_API_KEY": "sk-secret-in-health"})
    report = await harness.health()
    assert report["found"] is True and report["version"] == "2.1.197", report
    assert report["auth"]["model_key_configured"] is True
    assert "sk-secret-in-health" not in json.dumps(report)
