"""The harness contract suite: what the runner relies on from every `Harness`.

    class TestMyHarness(HarnessContract):
        @pytest.fixture
        def harness(self):
            return MyHarness(MySettings(bin="/path/to/cli"), environ={"PATH": "/usr/bin:/bin"})

The suite builds commands for a sample task in a scratch dir (never runs the
CLI except through `health()`), and checks: the protocol, the opsgate
environment the runner promises agents, that no server secret leaks into the
agent's environment, that files stay in the task's dirs, that output parsing
and failure detection never raise, and that health is a JSON report.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec
import pytest

from opsgate.protocols import Harness, HarnessCommand, HarnessRun, ProgressEvent

SERVER_SECRETS = ("OPSGATE_DATABASE_URL", "DATABASE_URL", "OPSGATE_SECRET_KEY", "AGENT_LLM_API_KEY",
                  "OPSGATE_PROXY_SECRET", "ITOP_PASSWORD", "WAZUH_PASSWORD")
GARBAGE_LINES = ("", " ", "not json at all", "{", "}", "{}", "[]", "[1, 2]", "null", '{"type": 5}',
                 '{"type": "result"}', '{"type": "assistant", "message": null}', "\x00\x01", "x" * 100_000,
                 '{"type":"item.completed","item":null}', "data: [DONE]")


class HarnessContract:
    """Contract tests every harness plugin runs (subclass and override `harness`)."""

    @pytest.fixture
    def harness(self) -> Harness:
        raise NotImplementedError("override the `harness` fixture")

    @pytest.fixture
    def run(self, tmp_path: Path) -> HarnessRun:
        work, state = tmp_path / "work", tmp_path / "state"
        work.mkdir()
        (work / "AGENTS.md").write_text("# instructions\n")
        (work / "TASK.md").write_text("Do the task.\n")
        return HarnessRun(task_id=31, agent_id=12, ticket_id=7, work_dir=str(work), state_dir=str(state),
                          prompt="Do the task.", prompt_file=str(work / "TASK.md"), model="contract-model",
                          model_base_url="http://127.0.0.1:9/", model_api_key="sk-contract-model-key",
                          api_url="http://127.0.0.1:8000", agent_token="agt_contract_token")

    def test_satisfies_the_protocol(self, harness: Harness) -> None:
        assert isinstance(harness, Harness)
        assert isinstance(harness.name, str) and re.fullmatch(r"[a-z][a-z0-9-]*", harness.name)

    def test_command_carries_the_opsgate_environment(self, harness: Harness, run: HarnessRun) -> None:
        command = harness.build_command(run)
        assert isinstance(command, HarnessCommand)
        assert command.argv and all(isinstance(a, str) and a for a in command.argv)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in command.env.items())
        env = command.env
        assert env["OPSGATE_API_URL"] == run.api_url
        assert env["OPSGATE_AGENT_ID"] == "12" and env["OPSGATE_TICKET_ID"] == "7" and env["OPSGATE_TASK_ID"] == "31"
        assert env["OPSGATE_AGENT_TOKEN"] == run.agent_token
        assert "PATH" in env

    def test_command_is_pure_and_repeatable(self, harness: Harness, run: HarnessRun) -> None:
        before = sorted(p.name for p in Path(run.work_dir).iterdir())
        first, second = harness.build_command(run), harness.build_command(run)
        assert first == second
        # no I/O: the runner writes `files` itself
        assert not Path(run.state_dir).exists()
        assert sorted(p.name for p in Path(run.work_dir).iterdir()) == before

    def test_no_server_secret_reaches_the_agent_environment(self, harness: Harness, run: HarnessRun,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        for name in SERVER_SECRETS:
            monkeypatch.setenv(name, f"server-secret-{name}")
        env = harness.build_command(run).env
        for name in SERVER_SECRETS:
            assert name not in env, name
            assert all(f"server-secret-{name}" not in value for value in env.values()), name

    def test_files_stay_in_the_task_dirs(self, harness: Harness, run: HarnessRun) -> None:
        roots = (Path(run.work_dir).resolve(), Path(run.state_dir).resolve())
        for path, content in harness.build_command(run).files.items():
            target = Path(path) if os.path.isabs(path) else Path(run.work_dir) / path
            resolved = target.resolve()
            assert any(resolved == r or r in resolved.parents for r in roots), path
            assert isinstance(content, str)
            assert run.agent_token not in content, f"{path} holds the agent token"

    def test_parse_line_never_raises(self, harness: Harness) -> None:
        for line in GARBAGE_LINES:
            event = harness.parse_line(line)
            assert event is None or isinstance(event, ProgressEvent)
            if event is not None:
                assert event.kind in ("message", "tool_call", "tool_result", "error", "usage", "final"), event
                msgspec.json.encode(event)

    def test_detect_failure_never_raises(self, harness: Harness, run: HarnessRun) -> None:
        for code in (0, 1, 2, -9, 137):
            for tail in ("", "garbage\n", "\n".join(GARBAGE_LINES[:12])):
                reason = harness.detect_failure(run.work_dir, code, tail)
                assert reason is None or (isinstance(reason, str) and reason)

    async def test_health_is_a_json_report_without_secrets(self, harness: Harness) -> None:
        report = await harness.health()
        assert isinstance(report.get("ok"), bool)
        encoded = msgspec.json.encode(report).decode()
        assert "sk-contract-model-key" not in encoded and "agt_contract_token" not in encoded
