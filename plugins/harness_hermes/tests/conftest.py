"""Fixtures for the Hermes harness tests (no helpers are imported across test modules)."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
AGENT_CLIS = REPO / ".tools" / "agent-clis"


@pytest.fixture
def work_root(request: pytest.FixtureRequest) -> Path:
    """A scratch dir under the repo's `.tools/test-work/` (like the runner's data dir, not /tmp)."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    path = REPO / ".tools" / "test-work" / f"hermes-{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    if not os.environ.get("OPSGATE_KEEP_TEST_WORK"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def hermes_bin() -> str:
    """The real `hermes` (HERMES_BIN, else the venv scripts/install-agent-clis.sh made in .tools)."""
    path = os.environ.get("HERMES_BIN") or str(AGENT_CLIS / "hermes-venv" / "bin" / "hermes")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"Hermes Agent is not installed at {path}: run scripts/install-agent-clis.sh or set HERMES_BIN")
    return path


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
