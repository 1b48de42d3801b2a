"""The on-disk layout of the published-sites directory and its atomic swap.

    <published>/<slug>                  symlink -> .versions/<slug>.<hex32>   (the live site)
    <published>/.versions/<slug>.<hex>  one complete, never-modified copy per deploy
    <published>/.tmp/<slug>.<hex>       a copy being written (never served)
    <published>/.trash/<name>.<ns>      superseded versions, deleted after `retain_seconds`
    <published>/.locks/<slug>.lock      serializes the swap of one slug (flock)

A deploy writes a fresh version, then replaces the `<slug>` symlink with one
`rename(2)`: a reader resolves either the old or the new version, never a
half-written one. Superseded versions are moved to `.trash` (a reader that
already opened them keeps working) and removed once older than the grace.
Every name starting with a dot is refused by the serving route.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Layout", "LINK_TARGET_RE"]

VERSIONS, TMP, TRASH, LOCKS = ".versions", ".tmp", ".trash", ".locks"
LINK_TARGET_RE = re.compile(r"^\.versions/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.([0-9a-f]{32})$")
_VERSION_RE = re.compile(r"^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.[0-9a-f]{32}$")
_TRASH_RE = re.compile(r"^(?P<name>.+)\.(?P<ns>[0-9]{1,20})$")
_STALE_TMP_SECONDS = 3600.0


class Layout:
    """Paths and filesystem operations of one published-sites directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def ensure(self) -> None:
        """Create the directory and its internal folders (lazily, on the first publish)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        for name in (VERSIONS, TMP, TRASH, LOCKS):
            (self.root / name).mkdir(exist_ok=True, mode=0o755)

    def new_temp(self, slug: str) -> tuple[str, Path]:
        """A fresh, empty folder for the copy of one deploy: (version name, path)."""
        version = f"{slug}.{secrets.token_hex(16)}"
        path = self.root / TMP / version
        path.mkdir(mode=0o755)
        return version, path

    def discard(self, path: Path) -> None:
        """Remove a folder this plugin wrote (a refused copy, an old version)."""
        shutil.rmtree(path, onerror=_log_rmtree_error)

    @contextmanager
    def locked(self, slug: str) -> Iterator[None]:
        """Hold the per-slug swap lock (works across processes sharing the directory)."""
        fd = os.open(self.root / LOCKS / f"{slug}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def activate(self, slug: str, version: str, temp: Path) -> None:
        """Move a validated copy into `.versions` and point `<slug>` at it in one rename."""
        stored = self.root / VERSIONS / version
        link = self.root / TMP / f"{version}.link"
        live = self.root / slug
        os.rename(temp, stored)
        try:
            os.symlink(f"{VERSIONS}/{version}", link)
            with self.locked(slug):
                previous = self._current(live)
                if live.is_dir() and not live.is_symlink():
                    # Not written by this plugin (a hand-made folder): move it aside first.
                    log.warning("replacing a hand-made published folder %s", live)
                    os.rename(live, self._trash_name(slug))
                os.replace(link, live)
                if previous and previous != version:
                    os.rename(self.root / VERSIONS / previous, self._trash_name(previous))
        except BaseException:
            _unlink(link)
            if self.live_version(slug) != version:
                self.discard(stored)
            raise
        log.info("published site %s as %s", slug, version)

    def cleanup(self, retain_seconds: float) -> None:
        """Delete trashed versions past the grace period, and copies or versions left by a crashed deploy."""
        now = time.time_ns()
        for entry in _entries(self.root / VERSIONS):
            match = _VERSION_RE.match(entry.name)
            if match is None or _age(entry) < _STALE_TMP_SECONDS:
                continue
            with self.locked(match[1]):  # a swap in progress moves its old version to .trash itself
                if self.live_version(match[1]) != entry.name and os.path.lexists(entry.path):
                    self.discard(Path(entry.path))
        for entry in _entries(self.root / TRASH):
            match = _TRASH_RE.match(entry.name)
            if match is None or (now - int(match["ns"])) / 1e9 >= retain_seconds:
                self.discard(Path(entry.path))
        for entry in _entries(self.root / TMP):
            if _age(entry) >= _STALE_TMP_SECONDS:
                if entry.is_dir(follow_symlinks=False):
                    self.discard(Path(entry.path))
                else:
                    _unlink(Path(entry.path))

    def live_version(self, slug: str) -> str | None:
        """The version `<slug>` points at, or None."""
        return self._current(self.root / slug)

    def _current(self, live: Path) -> str | None:
        try:
            target = os.readlink(live)
        except (FileNotFoundError, OSError):
            return None
        match = LINK_TARGET_RE.match(target)
        return target.split("/", 1)[1] if match else None

    def _trash_name(self, name: str) -> Path:
        return self.root / TRASH / f"{name}.{time.time_ns()}"


def _entries(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except FileNotFoundError:
        return []


def _age(entry: os.DirEntry[str]) -> float:
    """Seconds since the entry last changed (0 if it is already gone)."""
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _log_rmtree_error(function: object, path: str, exc_info: object) -> None:
    if isinstance(exc_info, tuple) and isinstance(exc_info[1], FileNotFoundError):
        return
    log.warning("could not remove %s: %s", path, exc_info[1] if isinstance(exc_info, tuple) else exc_info)
