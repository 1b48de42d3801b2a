"""Fixtures for the Codex harness tests (no helpers are imported across test modules)."""

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
    """A scratch dir under the repo's `.tools/test-work/`.

    Not pytest's tmp_path: that lives in the system temp dir, where Codex's
    workspace-write sandbox breaks (harnesses.md §3.1).
    """
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    path = REPO / ".tools" / "test-work" / f"codex-{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    if not os.environ.get("OPSGATE_KEEP_TEST_WORK"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def codex_bin() -> str:
    """The real `codex` (CODEX_BIN, else the one scripts/install-agent-clis.sh put in .tools)."""
    path = os.environ.get("CODEX_BIN") or str(AGENT_CLIS / "node" / "node_modules" / ".bin" / "codex")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"Codex is not installed at {path}: run scripts/install-agent-clis.sh or set CODEX_BIN")
    return path


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
