"""Publishing valid trees: contents, results, atomic re-deploys, clean-up, races with the agent."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from opsgate.errors import Invalid
from opsgate_deploy_static_site import serving
from opsgate_deploy_static_site import target as target_module
from opsgate_deploy_static_site.target import StaticSiteTarget
from opsgate_deploy_static_site.tree import Limits, copy_tree, scan_tree

LIMITS = Limits(max_files=100, max_dirs=10, max_depth=4, max_total_bytes=10_000, max_file_bytes=1024,
                extensions=frozenset({"html", "txt", "png"}))


def _live(published: Path, slug: str) -> Path:
    return published / ".versions" / os.readlink(published / slug).split("/", 1)[1]


async def test_publishes_a_nested_tree_with_every_allowed_type(work, published, make_target, request_for, site):
    files = {"index.html": "<p>home</p>", "about page.html": "<p>about</p>", "img/Logo.PNG": b"\x89PNG....",
             "a/b/c/deep.txt": "deep", "data/x.json": "{}", "js/app.mjs": "export {}", "css/s.css": "p{}",
             "site.webmanifest": "{}", "fonts/f.woff2": b"wOF2"}
    site(work / "site", files)
    result = await make_target().publish(request_for("site", "full-demo"))
    assert result.relative_url == "/published/full-demo/"
    assert result.public_url is None
    assert result.files == len(files)
    assert result.bytes == sum(len(v if isinstance(v, bytes) else v.encode()) for v in files.values())
    live = _live(published, "full-demo")
    for rel, content in files.items():
        path = live / rel
        assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(published / ".tmp") == []


async def test_public_url_from_the_request_or_the_settings(work, make_target, request_for, site):
    site(work / "site")
    result = await make_target().publish(request_for("site/", "pub", public_base_url="https://192.168.50.222:25443/"))
    assert result.public_url == "https://192.168.50.222:25443/published/pub/"
    result = await make_target(public_base_url="https://ops.example/base").publish(request_for("site", "pub"))
    assert result.public_url == "https://ops.example/base/published/pub/"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "https://user:pw@host/", "https://host/?q=1",
                                 "https://host/#x", "ftp://host/", "https://host/a b", "https://"])
async def test_bad_public_base_url_is_refused_before_anything_is_written(url, work, published, make_target,
                                                                         request_for, site):
    site(work / "site")
    with pytest.raises(Invalid) as caught:
        await make_target().publish(request_for("site", "pub", public_base_url=url))
    assert caught.value.field == "public_base_url"
    assert not published.exists()


async def test_redeploy_replaces_the_site_and_retires_the_old_version(work, published, make_target,
                                                                      request_for, site):
    target = make_target()
    site(work / "v1", {"index.html": "one", "old.txt": "only in v1"})
    site(work / "v2", {"index.html": "two"})
    await target.publish(request_for("v1", "flip"))
    first = os.readlink(published / "flip")
    await target.publish(request_for("v2", "flip"))
    assert os.readlink(published / "flip") != first
    assert (published / "flip" / "index.html").read_text() == "two"
    assert not (published / "flip" / "old.txt").exists()
    assert os.listdir(published / ".versions") == [os.readlink(published / "flip").split("/", 1)[1]]
    assert [name.rsplit(".", 1)[0] for name in os.listdir(published / ".trash")] == [first.split("/", 1)[1]]


async def test_old_versions_are_deleted_after_the_grace_period(work, published, make_target, request_for, site):
    target = make_target(retain_seconds=0)
    for n in range(4):
        site(work / f"v{n}", {"index.html": f"v{n}"})
        await target.publish(request_for(f"v{n}", "gc"))
    assert len(os.listdir(published / ".versions")) == 1
    assert os.listdir(published / ".trash") == []
    assert (published / "gc" / "index.html").read_text() == "v3"


async def test_copies_left_by_a_crashed_deploy_are_removed(work, published, make_target, request_for, site):
    target = make_target()
    site(work / "site")
    await target.publish(request_for("site", "one"))
    stale = published / ".tmp" / "one.00000000000000000000000000000000"
    stale.mkdir()
    (stale / "index.html").write_text("half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = published / ".tmp" / "two.11111111111111111111111111111111"
    fresh.mkdir()
    await target.publish(request_for("site", "one"))
    assert os.listdir(published / ".tmp") == [fresh.name]


async def test_versions_orphaned_by_a_crash_are_removed_but_live_ones_kept(work, published, make_target,
                                                                         request_for, site):
    target = make_target()
    site(work / "site")
    await target.publish(request_for("site", "keep"))
    live = _live(published, "keep")
    orphan = published / ".versions" / ("keep." + "a" * 32)
    orphan.mkdir()
    old = time.time() - 7200
    for path in (live, orphan):
        os.utime(path, (old, old))
    await target.publish(request_for("site", "other"))
    assert live.is_dir() and not orphan.exists()


async def test_a_hand_made_folder_is_replaced(work, published, make_target, request_for, site):
    (published / "manual").mkdir(parents=True)
    (published / "manual" / "index.html").write_text("by hand")
    site(work / "site", {"index.html": "deployed"})
    await make_target().publish(request_for("site", "manual"))
    assert (published / "manual").is_symlink()
    assert (published / "manual" / "index.html").read_text() == "deployed"


async def test_concurrent_deploys_of_one_slug_leave_one_complete_site(work, published, make_target,
                                                                      request_for, site):
    target = make_target(retain_seconds=0)
    for n in range(6):
        site(work / f"v{n}", {"index.html": f"v{n}", **{f"f{i}.txt": f"v{n}" for i in range(20)}})
    await asyncio.gather(*(target.publish(request_for(f"v{n}", "race")) for n in range(6)))
    live = _live(published, "race")
    texts = {p.read_text() for p in live.iterdir()}
    assert len(texts) == 1 and len(list(live.iterdir())) == 21
    assert os.listdir(published / ".versions") == [live.name]


async def test_a_concurrent_reader_never_sees_a_missing_or_mixed_site(work, published, make_target,
                                                                      request_for, site):
    """Read the whole site through one folder descriptor (as the serving route does) while re-deploying."""
    target = make_target()
    for n in range(2):
        site(work / f"v{n}", {"index.html": f"v{n}", **{f"f{i}.txt": f"v{n}" for i in range(30)}})
    await target.publish(request_for("v0", "atomic"))
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    root = os.open(published, os.O_RDONLY | os.O_DIRECTORY)

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                # as the serving route does: one retry when the old version moved away under the old link
                fd = serving._open_live("atomic", root)
            except OSError as exc:
                problems.append(f"site missing: {exc}")
                continue
            try:
                seen = set()
                for i in range(30):
                    f = os.open(f"f{i}.txt", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
                    seen.add(os.read(f, 100))
                    os.close(f)
                f = os.open("index.html", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
                seen.add(os.read(f, 100))
                os.close(f)
                if len(seen) != 1:
                    problems.append(f"mixed site: {seen}")
                reads += 1
            except OSError as exc:
                problems.append(f"file missing: {exc}")
            finally:
                os.close(fd)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for n in range(30):
            await target.publish(request_for(f"v{(n + 1) % 2}", "atomic"))
    finally:
        stop.set()
        for t in threads:
            t.join()
        os.close(root)
    assert not problems, problems[:5]
    assert reads > 0


@pytest.mark.parametrize("change", ["symlinked-index", "fifo", "hard-link", "grown", "new-dotfile"])
def test_copy_rechecks_every_entry_after_validation(change, tmp_path):
    """An agent racing the deploy (changing the tree after `scan_tree`) is caught by `copy_tree`."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.html").write_text("<p>ok</p>")
    (src / "a.txt").write_text("x" * 1000)
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    dst = tmp_path / "dst"
    dst.mkdir()
    dst_fd = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        scan_tree(src_fd, LIMITS)
        if change == "symlinked-index":
            (src / "index.html").unlink()
            os.symlink("/etc/passwd", src / "index.html")
        elif change == "fifo":
            os.mkfifo(src / "p.txt")
        elif change == "hard-link":
            os.link(src / "a.txt", tmp_path / "elsewhere.txt")
        elif change == "grown":
            with open(src / "a.txt", "a") as fh:
                fh.write("y" * 1000)
        else:
            (src / ".env").write_text("SECRET=1")
        with pytest.raises(Invalid):
            copy_tree(src_fd, dst_fd, LIMITS)
    finally:
        os.close(src_fd)
        os.close(dst_fd)


async def test_a_tree_changed_between_validation_and_copy_publishes_nothing(work, published, make_target,
                                                                            request_for, site, monkeypatch):
    target = make_target()
    site(work / "site", {"index.html": "v1"})
    await target.publish(request_for("site", "racy"))
    live_before = os.readlink(published / "racy")
    real_scan = target_module.scan_tree
    calls = 0

    def scan_then_race(fd, limits):
        nonlocal calls
        calls += 1
        totals = real_scan(fd, limits)
        if calls == 1:  # the agent swaps in a symlink right after the first validation pass
            (work / "site" / "index.html").unlink()
            os.symlink("/etc/passwd", work / "site" / "index.html")
        return totals

    monkeypatch.setattr(target_module, "scan_tree", scan_then_race)
    with pytest.raises(Invalid):
        await target.publish(request_for("site", "racy"))
    assert os.readlink(published / "racy") == live_before
    assert os.listdir(published / ".tmp") == []
    assert len(os.listdir(published / ".versions")) == 1


async def test_refusal_messages_escape_hostile_names(work, make_target, request_for, site):
    site(work / "site")
    (work / "site" / "a\nb\x1b[31m.sh").write_text("x")
    with pytest.raises(Invalid) as caught:
        await make_target().publish(request_for("site", "esc"))
    assert "\n" not in caught.value.reason and "\x1b" not in caught.value.reason


async def test_health(tmp_path, make_target):
    report = await make_target().health()
    assert report["ok"] is True and report["exists"] is False
    (tmp_path / "file.txt").write_text("not a folder")
    report = await StaticSiteTarget(tmp_path / "file.txt" / "published").health()
    assert report["ok"] is False
