"""Naming and content rules shared by publishing and serving.

One place decides what a safe slug, a safe path component and a servable
file type are, so the publisher never writes a name the server would refuse
and the server never serves a name the publisher would have refused.
"""

from __future__ import annotations

import re

__all__ = [
    "CONTENT_TYPES",
    "DEFAULT_EXTENSIONS",
    "INDEX",
    "check_name",
    "check_slug",
    "extension_of",
]

INDEX = "index.html"

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# ASCII only: letters, digits and a few punctuation marks; no leading dot
# (hidden files), no slash, backslash, percent sign, colon, NUL or control
# character, no unicode look-alikes (fullwidth dots and slashes never match).
NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9 ._~@+=,()-]{0,254}$")

# Every type this plugin knows how to serve safely. The operator's allow-list
# (`OPSGATE_PUBLISHED_ALLOWED_EXTENSIONS`) may narrow it, never widen it.
CONTENT_TYPES: dict[str, str] = {
    "html": "text/html; charset=utf-8",
    "htm": "text/html; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "json": "application/json",
    "map": "application/json",
    "txt": "text/plain; charset=utf-8",
    "xml": "application/xml",
    "webmanifest": "application/manifest+json",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "ico": "image/x-icon",
    "woff": "font/woff",
    "woff2": "font/woff2",
}

DEFAULT_EXTENSIONS: tuple[str, ...] = tuple(CONTENT_TYPES)


def check_slug(slug: object) -> str | None:
    """Why `slug` is not a safe DNS label, or None when it is."""
    if not isinstance(slug, str):
        return "must be a string"
    if not SLUG_RE.fullmatch(slug):
        return "must be a DNS label: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'"
    return None


def check_name(name: str) -> str | None:
    """Why `name` is not a safe file or folder name, or None when it is."""
    if name in ("", ".", ".."):
        return "empty, '.' and '..' path components are not allowed"
    if name.startswith("."):
        return "hidden files and folders (dotfiles) are not allowed"
    if "\x00" in name:
        return "NUL bytes are not allowed"
    if "/" in name or "\\" in name:
        return "slashes and backslashes are not allowed in a name"
    if "%" in name:
        return "percent signs (encoded paths) are not allowed"
    if not name.isascii():
        return "non-ASCII names are not allowed (unicode look-alikes)"
    if name.endswith(" ") or not NAME_RE.fullmatch(name):
        return "names may use ASCII letters, digits, space and ._~@+=,()- only (at most 255 characters)"
    return None


def extension_of(name: str) -> str:
    """The lower-cased extension of `name` ("" when it has none)."""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""
