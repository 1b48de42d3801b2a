"""The real `hermes` CLI against the fake model server, end to end (no runner)."""

from __future__ import annotations

import json
import os

import pytest

from opsgate.testing.fake_model import FakeModelServer, RecordingApi, final, run_cli, shell
from opsgate.testing.harness_e2e import AGENT_SCRIPT, AGENT_TOKEN, MODEL_KEY, e2e_run, layout_work_dir
from opsgate_harness_hermes import HermesHarness, HermesSettings

pytestmark = pytest.mark.e2e

MODEL = "fake-hermes-e2e"


def test_hermes_runs_a_shell_command_end_to_end(hermes_bin, work_root):
    work, state = layout_work_dir(work_root)
    harness = HermesHarness(HermesSettings(bin=hermes_bin),
                            environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
    with RecordingApi() as api, RecordingApi() as sentinel, \
            FakeModelServer([shell(AGENT_SCRIPT), final("Note posted and checkpoint written.")]) as fake:
        command = harness.build_command(e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                                                sentinel_url=sentinel.url))
        result = run_cli(command, cwd=work, timeout=180)

    assert result.exit_code == 0 and not result.timed_out, result.describe()
    notes = [c for c in api.calls if c.method == "POST"]
    assert len(notes) == 1, api.calls
    assert notes[0].path == "/api/tickets/7/notes"
    assert notes[0].bearer == AGENT_TOKEN
    assert notes[0].body == {"body": "Checked the host, all fine.", "visibility": "internal"}
    assert json.loads((work / "checkpoint.json").read_text()) == {"status": "done", "progress": 100,
                                                                   "summary": "note posted"}
    # key_env: OPENAI_API_KEY is stripped from the terminal tool's env; the agent token is not.
    agent_env = (work / "agent-env.txt").read_text()
    assert MODEL_KEY not in agent_env
    assert f"OPSGATE_AGENT_TOKEN={AGENT_TOKEN}" in agent_env
    assert "OPSGATE_TICKET_ID=7" in agent_env
    events = [e for e in map(harness.parse_line, result.lines) if e is not None]
    assert [e.kind for e in events] == ["message"], result.describe()
    assert events[0].text == "Note posted and checkpoint written."
    assert harness.detect_failure(str(work), result.exit_code, result.stdout[-20000:]) is None
    usage = json.loads((work / ".hermes-usage.json").read_text())
    assert usage["completed"] is True and usage["failed"] is False and usage["model"] == MODEL
    seen = fake.model_requests()
    assert len(seen) >= 2
    for request in seen:
        assert request.model == MODEL
        assert request.path == "/v1/chat/completions"
        assert request.authorization == f"Bearer {MODEL_KEY}"
    assert "terminal" in seen[0].tool_names
    assert "MARKER-AGENTS-MD" in seen[0].text()
    # Only the fake model, the stand-in API and nothing through the proxy sentinel.
    assert sentinel.calls == []
    assert (state / "hermes" / "config.yaml").is_file()


def test_hermes_model_failure_is_detected_despite_exit_zero(hermes_bin, work_root):
    work, state = layout_work_dir(work_root)
    harness = HermesHarness(HermesSettings(bin=hermes_bin), environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    with RecordingApi() as api, RecordingApi() as sentinel, FakeModelServer(fail_status=401) as fake:
        command = harness.build_command(e2e_run(work, state, model=MODEL, model_base_url=fake.url, api_url=api.url,
                                                sentinel_url=sentinel.url))
        result = run_cli(command, cwd=work, timeout=120)
    assert result.exit_code == 0 and not result.timed_out, result.describe()  # the exit code hides it
    reason = harness.detect_failure(str(work), result.exit_code, result.stdout[-20000:])
    assert reason is not None and "401" in reason, result.describe()
    assert [e.kind for e in map(harness.parse_line, result.lines) if e] == ["error"]
    assert api.calls == [] and sentinel.calls == []


async def test_hermes_health(hermes_bin):
    harness = HermesHarness(HermesSettings(bin=hermes_bin),
                            environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AGENT_LLM_API_KEY": "sk-x"})
    report = await harness.health()
    assert report["ok"] is True and report["version"] == "0.19.0", report
    assert "sk-x" not in json.dumps(report)
