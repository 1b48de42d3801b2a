"""Fixtures of the static-site plugin tests (fixtures only; no helpers imported by tests)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsgate.protocols import DeployRequest
from opsgate_deploy_static_site.settings import StaticSiteSettings
from opsgate_deploy_static_site.target import StaticSiteTarget


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """An agent work dir."""
    path = tmp_path / "agent-work"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the work dir holding a site and a secret that must never be published."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "index.html").write_text("<p>outside</p>")
    (path / "secret.txt").write_text("TOP-SECRET-OUTSIDE")
    return path


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return tmp_path / "published"


@pytest.fixture
def make_target(published: Path) -> Callable[..., StaticSiteTarget]:
    """`make_target(**settings)`: a target publishing into `published` with these limits."""

    def build(**overrides: Any) -> StaticSiteTarget:
        return StaticSiteTarget(published, StaticSiteSettings(**overrides))

    return build


@pytest.fixture
def site() -> Callable[..., Path]:
    """`site(root, files={rel: text})`: write a small valid static tree."""

    def build(root: Path, files: dict[str, str | bytes] | None = None) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in (files or {"index.html": "<!doctype html><title>ok</title><p>ok</p>"}).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return root

    return build


@pytest.fixture
def request_for(work: Path) -> Callable[..., DeployRequest]:
    """`request_for(source_dir, slug, **kw)`: a deploy request against the `work` dir."""

    def build(source_dir: str, slug: str, **extra: Any) -> DeployRequest:
        fields: dict[str, Any] = {"change_id": 7, "agent_id": 3, "ticket_id": 5, "work_dir": str(work),
                                  "source_dir": source_dir, "slug": slug}
        fields.update(extra)
        return DeployRequest(**fields)

    return build


@pytest.fixture
def snapshot(tmp_path: Path) -> Callable[[], dict[str, Any]]:
    """`snapshot()`: every entry under the test's tmp dir (and /etc/passwd) with type, inode, size and content hash."""

    def entry(path: Path) -> tuple[Any, ...]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return ("link", os.readlink(path))
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if st.st_size < 1 << 20 else st.st_size
            return ("file", st.st_ino, st.st_size, st.st_mtime_ns, st.st_nlink, digest)
        return (stat.S_IFMT(st.st_mode), st.st_ino)

    def take() -> dict[str, Any]:
        seen: dict[str, Any] = {"/etc/passwd": entry(Path("/etc/passwd"))}
        for dirpath, dirnames, filenames in os.walk(tmp_path, followlinks=False):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                seen[str(path.relative_to(tmp_path))] = entry(path)
        return seen

    return take
