"""`GET|HEAD /published/{path}`: published sites, read-only and public by design.

The URL is parsed from the raw request path (Litestar's normalized `path`
hides `//`, trailing slashes and `%2f`): every component is strictly
percent-decoded and must pass the same name rules as publishing, so `..`,
encoded separators, dotfiles and look-alikes are a 404. Files are reached by
opening one component at a time with `O_NOFOLLOW` from the site's version
folder, so no symlink inside a site is ever followed. Responses carry a
sandboxing Content-Security-Policy (see the README).
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from litestar import Request, Response, route
from litestar.enums import HttpMethod

from opsgate_deploy_static_site.layout import LINK_TARGET_RE
from opsgate_deploy_static_site.rules import CONTENT_TYPES, INDEX, check_name, check_slug, extension_of

log = logging.getLogger(__name__)

__all__ = ["CSP", "PREFIX", "Found", "make_route", "resolve"]

PREFIX = "/published/"
CSP = ("sandbox allow-scripts allow-popups; default-src 'self'; script-src 'self' 'unsafe-inline'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; object-src 'none'; frame-src 'none'; worker-src 'none'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class Found:
    """A file to serve (`body` set) or a folder to redirect to (`location` set)."""

    content_type: str = ""
    body: bytes = b""
    location: str = ""


def _components(raw_path: str) -> list[str] | None:
    """Decoded components after `/published/` ("" last for a trailing slash), or None if unsafe."""
    if not raw_path.startswith(PREFIX) or _BAD_PERCENT.search(raw_path):
        return None
    parts = []
    for raw in raw_path[len(PREFIX):].split("/"):
        try:
            parts.append(unquote_to_bytes(raw).decode("utf-8", "strict"))
        except UnicodeDecodeError:
            return None
    if check_slug(parts[0]) is not None:
        return None
    for index, part in enumerate(parts[1:], start=1):
        if part == "" and index == len(parts) - 1:
            continue  # trailing slash: the folder's index
        if check_name(part) is not None:
            return None
    return parts


def _open_live(slug: str, root: int) -> int:
    """Open the live version of `slug` through its link (the one symlink followed).

    A re-deploy swaps the link atomically and then moves the old version to
    the trash; a reader that resolved the old link a moment before can find
    that version gone (ENOENT). The link then already names the new version,
    so one retry reads it. Anything else wrong raises OSError (a 404).
    """
    for attempt in (1, 2):
        link = LINK_TARGET_RE.match(os.readlink(slug, dir_fd=root))
        if link is None or link.group(1) != slug:
            raise FileNotFoundError(slug)
        try:
            return os.open(slug, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root)
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise FileNotFoundError(slug)  # unreachable; keeps type checkers content


def resolve(published_dir: str | os.PathLike[str], raw_path: str) -> Found | None:
    """What `raw_path` (an undecoded `/published/...` path) serves, or None for a 404."""
    parts = _components(raw_path)
    if parts is None:
        return None
    slug, rest = parts[0], parts[1:]
    try:
        root = os.open(published_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    fds = [root]
    try:
        fds.append(_open_live(slug, root))
        if not rest:
            return Found(location=PREFIX + quote(slug) + "/")
        for name in rest[:-1]:
            fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
        last = rest[-1] or INDEX
        st = os.stat(last, dir_fd=fds[-1], follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode) and rest[-1]:
            return Found(location=PREFIX + "/".join(quote(p) for p in parts) + "/")
        content_type = CONTENT_TYPES.get(extension_of(last))
        if not stat.S_ISREG(st.st_mode) or content_type is None:
            return None
        fd = os.open(last, _FILE_FLAGS, dir_fd=fds[-1])
        fds.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return Found(content_type=content_type, body=fh.read())
    except OSError:
        return None
    finally:
        for fd in reversed(fds):
            os.close(fd)


def make_route(published_dir: str | os.PathLike[str]) -> object:
    """The public `GET|HEAD /published/{path:path}` handler serving `published_dir`."""
    root = Path(published_dir)

    @route("/published/{path:path}", http_method=[HttpMethod.GET, HttpMethod.HEAD], opt={"public": True},
           operation_id="published_site_file", tags=["published"], sync_to_thread=True,
           summary="A file of a published static site (public)")
    def published_file(request: Request, path: str) -> Response[bytes]:
        """Serve one file of a published site; anything unsafe or missing is a 404."""
        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        found = resolve(root, raw.decode("latin-1"))
        if found is None:
            return Response(content=b"not found", status_code=404, media_type="text/plain",
                            headers=HEADERS)
        if found.location:
            return Response(content=b"", status_code=301, headers={**HEADERS, "Location": found.location})
        # Litestar appends "; charset=utf-8" to text/* types itself.
        media_type = found.content_type.split(";", 1)[0] if found.content_type.startswith("text/") \
            else found.content_type
        return Response(content=found.body, media_type=media_type, headers=HEADERS)

    return published_file
