"""Settings of the static-site deployment target (prefix `OPSGATE_PUBLISHED_`).

`load_settings(core_settings)` reads them from the core settings'
environment; `published_dir(...)` falls back to `<OPSGATE_DATA_DIR>/published`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

import opsgate.settings
from opsgate.errors import Invalid
from opsgate_deploy_static_site.rules import CONTENT_TYPES, DEFAULT_EXTENSIONS

if TYPE_CHECKING:
    from opsgate.settings import Settings

__all__ = ["PREFIX", "StaticSiteSettings", "load_settings"]

PREFIX = "OPSGATE_PUBLISHED_"


class StaticSiteSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Limits and location of published sites; see the plugin README for each variable."""

    dir: str = ""  # "" -> <data_dir>/published
    max_files: int = 1000
    max_dirs: int = 200
    max_depth: int = 16
    max_total_bytes: int = 50 * 1024 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    allowed_extensions: str = ",".join(DEFAULT_EXTENSIONS)
    retain_seconds: float = 60.0
    public_base_url: str | None = None

    def __post_init__(self) -> None:
        for field in ("max_files", "max_dirs", "max_depth", "max_total_bytes", "max_file_bytes"):
            if getattr(self, field) < 1:
                raise Invalid(PREFIX + field.upper(), "must be at least 1")
        if self.retain_seconds < 0:
            raise Invalid(PREFIX + "RETAIN_SECONDS", "must not be negative")
        unknown = sorted(self.extensions() - set(CONTENT_TYPES))
        if unknown:
            raise Invalid(PREFIX + "ALLOWED_EXTENSIONS",
                          f"unsupported extensions {unknown}; choose from {sorted(CONTENT_TYPES)}")
        if not self.extensions():
            raise Invalid(PREFIX + "ALLOWED_EXTENSIONS", "must name at least one extension")
        if "html" not in self.extensions():
            raise Invalid(PREFIX + "ALLOWED_EXTENSIONS", "must include html (every site has an index.html)")

    def extensions(self) -> frozenset[str]:
        """The allowed extensions, lower case, without dots."""
        return frozenset(part.strip().lstrip(".").lower() for part in self.allowed_extensions.split(",")
                         if part.strip())

    def published_dir(self, data_dir: str) -> Path:
        """The published-sites directory: `dir`, else `<data_dir>/published`."""
        return Path(self.dir) if self.dir else Path(data_dir) / "published"


def load_settings(settings: Settings) -> StaticSiteSettings:
    """Read `OPSGATE_PUBLISHED_*` from the core settings' environment."""
    return opsgate.settings.load(StaticSiteSettings, prefix=PREFIX, environ=settings.env)
