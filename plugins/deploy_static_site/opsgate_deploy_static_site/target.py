"""`StaticSiteTarget`: the `static-site` deploy target.

`publish` validates the agent's tree twice, once with `lstat` only before
anything is written and again on every open descriptor while copying, checks
the copy, then swaps it live in one rename (see `layout.py`). Blocking
filesystem work runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opsgate.errors import Invalid
from opsgate.protocols import DeployRequest, DeployResult
from opsgate_deploy_static_site.layout import Layout
from opsgate_deploy_static_site.rules import check_slug
from opsgate_deploy_static_site.settings import StaticSiteSettings
from opsgate_deploy_static_site.tree import Limits, copy_tree, open_source_root, scan_tree

log = logging.getLogger(__name__)

__all__ = ["StaticSiteTarget"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _check_base_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment
            or parts.username is not None or parts.password is not None
            or any(ch.isspace() or ord(ch) < 32 or ch in "\\<>\"'" for ch in value)):
        raise Invalid("public_base_url", "must be an http(s)://host[:port][/path] URL without credentials, "
                                         "query or fragment")
    return value.rstrip("/")


class StaticSiteTarget:
    """Publishes validated static trees from agent work dirs under `/published/<slug>/`."""

    name = "static-site"

    def __init__(self, published_dir: str | os.PathLike[str],
                 settings: StaticSiteSettings | None = None) -> None:
        self.settings = settings if settings is not None else StaticSiteSettings()
        self.layout = Layout(published_dir)
        self.limits = Limits(
            max_files=self.settings.max_files,
            max_dirs=self.settings.max_dirs,
            max_depth=self.settings.max_depth,
            max_total_bytes=self.settings.max_total_bytes,
            max_file_bytes=self.settings.max_file_bytes,
            extensions=self.settings.extensions(),
        )

    @property
    def published_dir(self) -> Path:
        """Where sites are published."""
        return self.layout.root

    async def publish(self, request: DeployRequest) -> DeployResult:
        """Validate and publish `request.source_dir` as `/published/<slug>/`; raise `Invalid` if refused."""
        reason = check_slug(request.slug)
        if reason:
            raise Invalid("slug", reason)
        base = _check_base_url(request.public_base_url) or _check_base_url(self.settings.public_base_url)
        files, size = await asyncio.to_thread(self._publish_sync, request)
        relative = f"/published/{request.slug}/"
        log.info("deployed static site", extra={"slug": request.slug, "change_id": request.change_id,
                                                "agent_id": request.agent_id, "files": files, "bytes": size})
        return DeployResult(relative_url=relative, public_url=f"{base}{relative}" if base else None,
                            files=files, bytes=size)

    def _publish_sync(self, request: DeployRequest) -> tuple[int, int]:
        src = open_source_root(request.work_dir, request.source_dir)
        try:
            scan_tree(src, self.limits)  # refuses before anything is written
            self.layout.ensure()
            version, temp = self.layout.new_temp(request.slug)
            try:
                dst = os.open(temp, _DIR_FLAGS)
                try:
                    copied = copy_tree(src, dst, self.limits)
                    check = scan_tree(dst, self.limits)
                finally:
                    os.close(dst)
                if (check.files, check.bytes, sorted(check.paths)) != (copied.files, copied.bytes,
                                                                       sorted(copied.paths)):
                    raise Invalid("source_dir", "the tree changed while it was being published")
                self.layout.activate(request.slug, version, temp)
            except BaseException:
                if temp.exists():
                    self.layout.discard(temp)
                raise
        finally:
            os.close(src)
        self.layout.cleanup(self.settings.retain_seconds)
        return copied.files, copied.bytes

    async def health(self) -> Mapping[str, Any]:
        """Whether the published-sites directory exists (or can be created) and is writable."""
        return await asyncio.to_thread(self._health_sync)

    def _health_sync(self) -> dict[str, Any]:
        root = self.layout.root
        probe = root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        writable = probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
        return {"ok": bool(writable), "published_dir": str(root), "exists": root.is_dir(),
                "writable": bool(writable)}
