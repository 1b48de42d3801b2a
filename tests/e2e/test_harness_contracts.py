"""The harness contract suite, run against the fake harness and the three in-repo harness plugins."""

import os
from pathlib import Path

import pytest

from opsgate.testing.contracts import HarnessContract
from opsgate.testing.fake_harness import FakeHarness

AGENT_CLIS = Path(__file__).resolve().parents[2] / ".tools" / "agent-clis"
PATH = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}


def _bin(var: str, default: Path) -> str:
    path = os.environ.get(var) or str(default)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is not installed: run scripts/install-agent-clis.sh or set {var}")
    return path


class TestFakeHarness(HarnessContract):
    @pytest.fixture
    def harness(self):
        return FakeHarness()


class TestClaudeCodeHarness(HarnessContract):
    @pytest.fixture
    def harness(self):
        from opsgate_harness_claude_code import ClaudeCodeHarness, ClaudeCodeSettings

        binary = _bin("CLAUDE_CODE_BIN", AGENT_CLIS / "node" / "node_modules" / ".bin" / "claude")
        return ClaudeCodeHarness(ClaudeCodeSettings(bin=binary), environ=PATH)


class TestCodexHarness(HarnessContract):
    @pytest.fixture
    def harness(self):
        from opsgate_harness_codex import CodexHarness, CodexSettings

        binary = _bin("CODEX_BIN", AGENT_CLIS / "node" / "node_modules" / ".bin" / "codex")
        return CodexHarness(CodexSettings(bin=binary), environ=PATH)


class TestHermesHarness(HarnessContract):
    @pytest.fixture
    def harness(self):
        from opsgate_harness_hermes import HermesHarness, HermesSettings

        binary = _bin("HERMES_BIN", AGENT_CLIS / "hermes-venv" / "bin" / "hermes")
        return HermesHarness(HermesSettings(bin=binary), environ=PATH)
