"""Fixtures for the Hermes harness tests (shared helpers come from opsgate.testing.harness_e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsgate.testing.harness_e2e import installed_cli, scratch_work_root

REPO = Path(__file__).resolve().parents[3]
AGENT_CLIS = REPO / ".tools" / "agent-clis"


@pytest.fixture
def work_root(request: pytest.FixtureRequest) -> Path:
    """A scratch dir under the repo's `.tools/test-work/` (like the runner's data dir, not /tmp)."""
    with scratch_work_root(REPO / ".tools" / "test-work", "hermes", request.node.name) as path:
        yield path


@pytest.fixture
def hermes_bin() -> str:
    """The real `hermes` (HERMES_BIN, else the venv scripts/install-agent-clis.sh made in .tools)."""
    return installed_cli("HERMES_BIN", AGENT_CLIS / "hermes-venv" / "bin" / "hermes", "Hermes Agent")


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
