"""Fixtures for the Claude Code harness tests (shared helpers come from opsgate.testing.harness_e2e)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from opsgate.testing.harness_e2e import installed_cli, scratch_work_root

REPO = Path(__file__).resolve().parents[3]
AGENT_CLIS = REPO / ".tools" / "agent-clis"


@pytest.fixture
def work_root(request: pytest.FixtureRequest) -> Path:
    """A scratch dir under the repo's `.tools/test-work/` (not the system temp dir)."""
    with scratch_work_root(REPO / ".tools" / "test-work", "claude", request.node.name) as path:
        yield path


@pytest.fixture
def claude_bin() -> str:
    """The real `claude` (CLAUDE_CODE_BIN, else the one scripts/install-agent-clis.sh put in .tools)."""
    return installed_cli("CLAUDE_CODE_BIN", AGENT_CLIS / "node" / "node_modules" / ".bin" / "claude", "Claude Code")


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
