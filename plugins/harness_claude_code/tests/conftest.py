"""Fixtures for the Claude Code harness tests (no helpers are imported across test modules)."""

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
    """A scratch dir under the repo's `.tools/test-work/` (not the system temp dir)."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    path = REPO / ".tools" / "test-work" / f"claude-{name}-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    if not os.environ.get("OPSGATE_KEEP_TEST_WORK"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def claude_bin() -> str:
    """The real `claude` (CLAUDE_CODE_BIN, else the one scripts/install-agent-clis.sh put in .tools)."""
    path = os.environ.get("CLAUDE_CODE_BIN") or str(AGENT_CLIS / "node" / "node_modules" / ".bin" / "claude")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"Claude Code is not installed at {path}: run scripts/install-agent-clis.sh or set CLAUDE_CODE_BIN")
    return path


@pytest.fixture
def bwrap_bin() -> str:
    """A bubblewrap binary for CLAUDE_CODE_SUBPROCESS_ENV_SCRUB: the system's, else the one Codex bundles."""
    found = shutil.which("bwrap")
    if found:
        return found
    vendored = sorted((AGENT_CLIS / "node" / "node_modules" / "@openai").glob("codex-linux-*/vendor/*/codex-resources/bwrap"))
    if vendored and os.access(vendored[0], os.X_OK):
        return str(vendored[0])
    pytest.fail("no bwrap found (system bubblewrap or the one bundled with Codex from scripts/install-agent-clis.sh)")


@pytest.fixture
def data_dir() -> Path:
    return Path(__file__).parent / "data"
