"""The public `/published/...` route through the app: types, headers, index, no listing, no escapes, HEAD."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import opsgate_deploy_static_site
from opsgate.protocols import DeployRequest
from opsgate_deploy_static_site.serving import resolve

SITE = {
    "index.html": "<!doctype html><title>demo</title><p>DEMO-HOME</p>",
    "style.css": "p{color:red}",
    "app.js": "console.log(1)",
    "mod.mjs": "export const x = 1",
    "data.json": "{\"a\": 1}",
    "logo.svg": "<svg xmlns='http://www.w3.org/2000/svg'/>",
    "pic.PNG": b"\x89PNG\r\n\x1a\n",
    "notes.txt": "notes",
    "font.woff2": b"wOF2",
    "app.webmanifest": "{}",
    "about page.html": "<p>ABOUT</p>",
    "sub/index.html": "<p>SUB-INDEX</p>",
    "noindex/page.html": "<p>PAGE</p>",
}
TYPES = {
    "": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "mod.mjs": "text/javascript; charset=utf-8",
    "data.json": "application/json",
    "logo.svg": "image/svg+xml",
    "pic.PNG": "image/png",
    "notes.txt": "text/plain; charset=utf-8",
    "font.woff2": "font/woff2",
    "app.webmanifest": "application/manifest+json",
    "about%20page.html": "text/html; charset=utf-8",
}


@pytest.fixture
def published(tmp_path: Path) -> Path:
    return tmp_path / "pub"


@pytest.fixture
def app(make_app, published):
    return make_app(plugins=[("static-site", opsgate_deploy_static_site)],
                    env={"OPSGATE_PUBLISHED_DIR": str(published)})


@pytest.fixture
def publish(app, work, site):
    """`await publish(slug, files)`: deploy through the target the app's plugin host holds."""
    target = app.state.plugins.deploy_targets()["static-site"]

    async def run(slug: str, files: dict[str, Any] | None = None, folder: str | None = None):
        folder = folder or f"src-{slug}"
        if files is not None:
            site(work / folder, files)
        return await target.publish(DeployRequest(change_id=1, agent_id=1, ticket_id=1, work_dir=str(work),
                                                  source_dir=folder, slug=slug))

    return run


@pytest_asyncio.fixture(loop_scope="session")
async def http(make_client, app, publish, published, tmp_path) -> AsyncIterator[Any]:
    """An anonymous client of the app, with `demo` published and secrets planted around it."""
    await publish("demo", SITE)
    (tmp_path / "secret.txt").write_text("TOP-SECRET")
    (published / "secret.txt").write_text("TOP-SECRET")
    async with make_client(app) as c:
        yield c


def _live(published: Path, slug: str) -> Path:
    return published / os.readlink(published / slug)


async def raw_request(app, raw_path: bytes, method: str = "GET") -> tuple[int, bytes]:
    """Send a raw, un-normalized path straight to the ASGI app (clients collapse `..` themselves)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": raw_path.decode("latin-1"), "raw_path": raw_path, "query_string": b"",
             "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 5000),
             "server": ("testserver", 80), "state": {}}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body


async def test_content_types_and_headers(http):
    for path, content_type in TYPES.items():
        r = await http.get(f"/published/demo/{path}")
        assert r.status_code == 200, path
        assert r.headers["content-type"] == content_type, path
        assert r.headers["x-content-type-options"] == "nosniff"
        csp = r.headers["content-security-policy"]
        assert csp.startswith("sandbox allow-scripts") and "allow-same-origin" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert r.headers["cache-control"] == "no-cache"
        assert "set-cookie" not in r.headers


async def test_index_resolution_and_bodies(http):
    assert "DEMO-HOME" in (await http.get("/published/demo/")).text
    assert "DEMO-HOME" in (await http.get("/published/demo/index.html")).text
    assert "SUB-INDEX" in (await http.get("/published/demo/sub/")).text
    assert (await http.get("/published/demo/pic.PNG")).content == SITE["pic.PNG"]


@pytest.mark.parametrize(("path", "location"), [("/published/demo", "/published/demo/"),
                                                ("/published/demo/sub", "/published/demo/sub/"),
                                                ("/published/demo/noindex", "/published/demo/noindex/")])
async def test_folders_without_a_slash_redirect(http, path, location):
    r = await http.get(path, follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == location


async def test_no_directory_listing(http):
    r = await http.get("/published/demo/noindex/")
    assert r.status_code == 404
    assert "page.html" not in r.text
    assert (await http.get("/published/demo/noindex/page.html")).status_code == 200


async def test_head(http):
    get = await http.get("/published/demo/style.css")
    head = await http.head("/published/demo/style.css")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["content-security-policy"] == get.headers["content-security-policy"]
    assert (await http.head("/published/demo/missing.html")).status_code == 404
    assert (await http.head("/published/demo/")).status_code == 200


async def test_missing_sites_and_files_are_404(http):
    for path in ["/published/nope/", "/published/nope/index.html", "/published/demo/missing.html",
                 "/published/demo/sub/missing.css"]:
        assert (await http.get(path)).status_code == 404, path


async def test_entries_planted_in_a_live_site_are_not_served(http, published):
    live = _live(published, "demo")
    os.symlink("/etc/passwd", live / "passwd.txt")
    os.symlink("sub", live / "linked")
    (live / "shell.php").write_text("<?php ?>")
    (live / ".env").write_text("SECRET=1")
    os.mkfifo(live / "pipe.txt")
    for path in ["passwd.txt", "linked/", "linked/index.html", "shell.php", ".env", "pipe.txt"]:
        r = await http.get(f"/published/demo/{path}")
        assert r.status_code == 404, path
        assert "root:" not in r.text and "SECRET" not in r.text


ENCODED_ESCAPES = [
    "/published/%2e%2e/secret.txt",
    "/published/%2e%2e/%2e%2e/etc/passwd",
    "/published/demo/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/published/demo/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/published/demo%2f..%2f..%2fsecret.txt",
    "/published/demo/..%2f..%2fsecret.txt",
    "/published/demo/sub%2findex.html",
    "/published/demo/%252e%252e/secret.txt",
    "/published/demo/%5c..%5c..%5csecret.txt",
    "/published/demo/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/secret.txt",
    "/published/demo/%EF%BC%8E%EF%BC%8E%EF%BC%8Fsecret.txt",
    "/published/demo/%c0%ae%c0%ae/secret.txt",
    "/published/demo/index.html%00.txt",
    "/published/demo/%00",
    "/published/demo/%zz",
    "/published/demo//index.html",
    "/published/.versions/",
    "/published/.tmp/",
    "/published/%2eversions/",
    "/published/secret.txt",
    "/published/DEMO/",
    "/published/demo/.%2e/secret.txt",
]


async def test_encoded_escapes_are_404(http):
    for path in ENCODED_ESCAPES:
        r = await http.get(path)
        assert r.status_code == 404, path
        assert "TOP-SECRET" not in r.text and "root:" not in r.text


LITERAL_ESCAPES = [b"/published/../secret.txt", b"/published/demo/../../secret.txt",
                   b"/published/demo/../../../../etc/passwd", b"/published/demo/./index.html",
                   b"/published/./demo/", b"/published/demo/sub/../index.html", b"/published/../pub/secret.txt",
                   b"/published/demo/..", b"/published/demo/sub/.."]


async def test_literal_dot_segments_are_404(http, app):
    status, body = await raw_request(app, b"/published/demo/index.html")
    assert status == 200 and b"DEMO-HOME" in body  # the raw sender works
    for raw in LITERAL_ESCAPES:
        status, body = await raw_request(app, raw)
        assert status == 404, raw
        assert b"TOP-SECRET" not in body and b"root:" not in body


async def test_the_version_folder_is_not_reachable_by_name(http, published):
    version = os.readlink(published / "demo").split("/", 1)[1]
    for path in [f"/published/{version}/", f"/published/.versions/{version}/index.html",
                 f"/published/%2eversions/{version}/index.html"]:
        assert (await http.get(path)).status_code == 404, path


async def test_a_slug_pointing_outside_the_versions_is_not_served(http, published, tmp_path):
    os.symlink(str(tmp_path), published / "planted")
    os.symlink("../", published / "planted2")
    assert (await http.get("/published/planted/secret.txt")).status_code == 404
    assert (await http.get("/published/planted2/secret.txt")).status_code == 404


async def test_resolve_refuses_without_touching_the_disk_for_bad_paths(tmp_path):
    for raw in ["/published/", "/elsewhere/demo/", "/published/demo/%", "/published/demo/%2", "/published/demo/a%2fb"]:
        assert resolve(tmp_path / "missing", raw) is None


async def test_a_missing_published_dir_is_a_404(make_client, make_app, tmp_path):
    app = make_app(plugins=[("static-site", opsgate_deploy_static_site)],
                   env={"OPSGATE_PUBLISHED_DIR": str(tmp_path / "never-created")})
    async with make_client(app) as c:
        assert (await c.get("/published/demo/")).status_code == 404
    assert not (tmp_path / "never-created").exists()


async def test_redeploys_are_served_atomically(http, publish, work, site):
    """An HTTP reader polling through re-deploys always gets a complete index, old or new."""
    site(work / "src-a", {"index.html": "<p>VERSION-A</p>"})
    site(work / "src-b", {"index.html": "<p>VERSION-B</p>"})
    done = asyncio.Event()
    bad: list[str] = []
    seen: set[str] = set()

    async def reader() -> None:
        while not done.is_set():
            r = await http.get("/published/flip/")
            if r.status_code != 200 or r.text not in ("<p>VERSION-A</p>", "<p>VERSION-B</p>"):
                bad.append(f"{r.status_code} {r.text[:80]}")
            else:
                seen.add(r.text)
            await asyncio.sleep(0)

    await publish("flip", {"index.html": "<p>VERSION-A</p>"}, folder="src-a")
    task = asyncio.create_task(reader())
    try:
        for n in range(20):
            await publish("flip", folder="src-b" if n % 2 == 0 else "src-a")
            await asyncio.sleep(0)
    finally:
        done.set()
        await task
    assert not bad, bad[:5]
    assert seen


async def test_published_sites_are_public_but_other_routes_are_not(http):
    assert (await http.get("/published/demo/")).status_code == 200
    assert (await http.get("/api/plugins")).status_code == 401
