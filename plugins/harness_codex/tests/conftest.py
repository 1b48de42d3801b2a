"""Fixtures for the Codex harness tests (shared helpers come from opsgate.testing.harness_e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsgate.testing.harness_e2e import installed_cli, scratch_work_root

REPO = Path(__file__).resolve().parents[3]
AGENT_CLIS = REPO / ".tools" / "agent-clis"


@pytest.fixture
def work_root(request: pytest.FixtureRequest) -> Path:
    """A scratch dir under the repo's `.tools/test-work/`.

    Not pytest's tmp_path: that lives in the system temp dir, where Codex's
    workspace-write sandbox breaks (harnesses.md §3.1).
    """
    with scratch_work_root(REPO / ".tools" / "test-work", "codex", request.node.name) as path:
        yield path


@pytest.fixture
def codex_bin() -> str:
    """The real `codex` (CODEX_BIN, else the one scripts/install-agent-clis.sh put in .tools)."""
    return installed_cli("CODEX_BIN", AGENT_CLIS / "node" / "node_modules" / ".bin" / "codex", "Codex")


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
