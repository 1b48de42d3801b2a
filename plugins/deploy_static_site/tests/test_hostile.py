"""A corpus of hostile trees, paths and slugs: each is refused with `Invalid` and nothing changes on disk.

Every case first publishes a valid `baseline` site (so the published-sites
layout exists and a live site is at stake), then snapshots every entry under
the test's tmp dir (work dir, the `outside` folder, the published dir) plus
/etc/passwd, attempts the hostile deploy, and compares.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsgate.errors import Invalid

INDEX = "<!doctype html><p>hi</p>"


def plain(work: Path, outside: Path) -> None:
    """A valid `site` folder (the hostile part is the path or the slug)."""
    (work / "site").mkdir()
    (work / "site" / "index.html").write_text(INDEX)


def with_entry(build: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def make(work: Path, outside: Path) -> None:
        plain(work, outside)
        build(work / "site", outside)

    return make


def symlink_to_passwd(site: Path, outside: Path) -> None:
    os.symlink("/etc/passwd", site / "passwd.html")


def symlinked_index(site: Path, outside: Path) -> None:
    (site / "index.html").unlink()
    os.symlink("/etc/passwd", site / "index.html")


def symlinked_parent_folder(site: Path, outside: Path) -> None:
    os.symlink("/etc", site / "assets")


def symlinked_folder_outside(site: Path, outside: Path) -> None:
    os.symlink(outside, site / "more")


def relative_inner_symlink(site: Path, outside: Path) -> None:
    os.symlink("index.html", site / "copy.html")


def dangling_symlink(site: Path, outside: Path) -> None:
    os.symlink("/nonexistent/target.html", site / "gone.html")


def deep_symlink(site: Path, outside: Path) -> None:
    (site / "a" / "b").mkdir(parents=True)
    os.symlink("../../../../outside/secret.txt", site / "a" / "b" / "s.txt")


def hard_link_outside(site: Path, outside: Path) -> None:
    os.link(outside / "secret.txt", site / "secret.txt")


def hard_link_inside(site: Path, outside: Path) -> None:
    os.link(site / "index.html", site / "again.html")


def fifo(site: Path, outside: Path) -> None:
    os.mkfifo(site / "pipe.txt")


def unix_socket(site: Path, outside: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(site / "s.js"))
    finally:
        sock.close()


def char_device(site: Path, outside: Path) -> None:
    try:
        os.mknod(site / "null.txt", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:  # unprivileged runs cannot make device nodes; a FIFO is the special file they can
        os.mkfifo(site / "null.txt")


def dotfile(site: Path, outside: Path) -> None:
    (site / ".env").write_text("SECRET=1")


def dot_folder(site: Path, outside: Path) -> None:
    (site / ".git").mkdir()
    (site / ".git" / "config.txt").write_text("[core]")


def php_file(site: Path, outside: Path) -> None:
    (site / "shell.php").write_text("<?php system($_GET['c']);")


def upper_case_bad_extension(site: Path, outside: Path) -> None:
    (site / "run.SH").write_text("rm -rf /")


def double_extension(site: Path, outside: Path) -> None:
    (site / "page.html.php").write_text("<?php ?>")


def no_extension(site: Path, outside: Path) -> None:
    (site / "Makefile").write_text("all:")


def markdown_prompt(site: Path, outside: Path) -> None:
    (site / "AGENTS.md").write_text("instructions")


def no_index(work: Path, outside: Path) -> None:
    (work / "site").mkdir()
    (work / "site" / "about.html").write_text("<p>no index</p>")


def index_is_a_folder(work: Path, outside: Path) -> None:
    (work / "site" / "index.html").mkdir(parents=True)
    (work / "site" / "index.html" / "index.html").write_text(INDEX)


def index_only_in_subfolder(work: Path, outside: Path) -> None:
    (work / "site" / "sub").mkdir(parents=True)
    (work / "site" / "sub" / "index.html").write_text(INDEX)


def huge_sparse_file(site: Path, outside: Path) -> None:
    with open(site / "big.png", "wb") as fh:
        fh.truncate(20 * 1024**3)


def over_file_limit(site: Path, outside: Path) -> None:
    (site / "big.txt").write_bytes(b"x" * 2048)


def too_many_files(site: Path, outside: Path) -> None:
    for i in range(6):
        (site / f"f{i}.txt").write_text("x")


def over_total_bytes(site: Path, outside: Path) -> None:
    for i in range(3):
        (site / f"part{i}.txt").write_bytes(b"x" * 900)


def too_deep(site: Path, outside: Path) -> None:
    deep = site.joinpath(*["d"] * 5)
    deep.mkdir(parents=True)
    (deep / "x.txt").write_text("deep")


def too_many_folders(site: Path, outside: Path) -> None:
    for i in range(4):
        (site / f"dir{i}").mkdir()


def fullwidth_file_name(site: Path, outside: Path) -> None:
    (site / "\uff0e\uff0e\uff0fpasswd.html").write_text("look-alike")


def fullwidth_index(site: Path, outside: Path) -> None:
    (site / "\uff49ndex.html").write_text("look-alike")


def backslash_file_name(site: Path, outside: Path) -> None:
    (site / "..\\..\\evil.html").write_text("backslash")


def percent_file_name(site: Path, outside: Path) -> None:
    (site / "%2e%2e%2fevil.html").write_text("encoded")


def newline_file_name(site: Path, outside: Path) -> None:
    (site / "a\nb.html").write_text("control")


def non_utf8_file_name(site: Path, outside: Path) -> None:
    fd = os.open(bytes(site) + b"/\xff\xfe.html", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)


def fullwidth_dot_folder(work: Path, outside: Path) -> None:
    plain(work, outside)
    (work / "\uff0e\uff0e").mkdir()
    (work / "\uff0e\uff0e" / "index.html").write_text(INDEX)


def source_is_symlink(work: Path, outside: Path) -> None:
    os.symlink(outside, work / "site")


def source_component_is_symlink(work: Path, outside: Path) -> None:
    os.symlink(outside.parent, work / "nest")
    (outside / "site").mkdir()
    (outside / "site" / "index.html").write_text(INDEX)


def source_is_a_file(work: Path, outside: Path) -> None:
    (work / "site.html").write_text(INDEX)


def hidden_source(work: Path, outside: Path) -> None:
    (work / ".site").mkdir()
    (work / ".site" / "index.html").write_text(INDEX)


def work_dir_root_files(work: Path, outside: Path) -> None:
    (work / "index.html").write_text(INDEX)
    (work / "checkpoint.json").write_text('{"status": "done"}')


# (id, builder, source_dir, slug, settings)
CASES: list[tuple[str, Callable[[Path, Path], None], str, str, dict[str, Any]]] = [
    # traversal and encoding in source_dir
    ("dotdot", plain, "../outside", "h1", {}),
    ("absolute", plain, "/etc", "h2", {}),
    ("absolute-outside", plain, "/tmp", "h3", {}),
    ("nested-dotdot", plain, "site/../../outside", "h4", {}),
    ("percent-dotdot", plain, "%2e%2e/outside", "h5", {}),
    ("percent-slash", plain, "..%2foutside", "h6", {}),
    ("double-percent", plain, "%252e%252e/outside", "h7", {}),
    ("fullwidth-dots", fullwidth_dot_folder, "\uff0e\uff0e", "h8", {}),
    ("fullwidth-slash", plain, "\uff0e\uff0e\uff0foutside", "h9", {}),
    ("division-slash", plain, "site\u2215..\u2215..\u2215outside", "h10", {}),
    ("one-dot-leaders", plain, "\u2025/outside", "h11", {}),
    ("nul-byte", plain, "site\x00/../../outside", "h12", {}),
    ("backslash", plain, "..\\outside", "h13", {}),
    ("backslash-nested", plain, "site\\..\\..\\outside", "h14", {}),
    ("file-url", plain, "file:///etc", "h15", {}),
    ("home-tilde", plain, "~/site", "h16", {}),
    ("empty-source", work_dir_root_files, "", "h17", {}),
    ("dot-source", work_dir_root_files, ".", "h18", {}),
    ("double-slash", plain, "site//", "h19", {}),
    ("hidden-source", hidden_source, ".site", "h20", {}),
    ("source-is-file", source_is_a_file, "site.html", "h21", {}),
    ("missing-source", plain, "nope", "h22", {}),
    # symlinks
    ("source-symlink", source_is_symlink, "site", "s1", {}),
    ("source-component-symlink", source_component_is_symlink, "nest/outside/site", "s2", {}),
    ("symlink-passwd", with_entry(symlink_to_passwd), "site", "s3", {}),
    ("symlinked-index", with_entry(symlinked_index), "site", "s4", {}),
    ("symlinked-parent-folder", with_entry(symlinked_parent_folder), "site", "s5", {}),
    ("symlinked-folder-outside", with_entry(symlinked_folder_outside), "site", "s6", {}),
    ("relative-inner-symlink", with_entry(relative_inner_symlink), "site", "s7", {}),
    ("dangling-symlink", with_entry(dangling_symlink), "site", "s8", {}),
    ("deep-symlink", with_entry(deep_symlink), "site", "s9", {}),
    # hard links and special files
    ("hard-link-outside", with_entry(hard_link_outside), "site", "l1", {}),
    ("hard-link-inside", with_entry(hard_link_inside), "site", "l2", {}),
    ("fifo", with_entry(fifo), "site", "f1", {}),
    ("socket", with_entry(unix_socket), "site", "f2", {}),
    ("char-device", with_entry(char_device), "site", "f3", {}),
    # hidden files and types
    ("dotfile", with_entry(dotfile), "site", "t1", {}),
    ("dot-folder", with_entry(dot_folder), "site", "t2", {}),
    ("php", with_entry(php_file), "site", "t3", {}),
    ("upper-sh", with_entry(upper_case_bad_extension), "site", "t4", {}),
    ("double-extension", with_entry(double_extension), "site", "t5", {}),
    ("no-extension", with_entry(no_extension), "site", "t6", {}),
    ("markdown", with_entry(markdown_prompt), "site", "t7", {}),
    ("narrowed-allow-list", with_entry(over_file_limit), "site", "t8", {"allowed_extensions": "html,css"}),
    # names
    ("fullwidth-file-name", with_entry(fullwidth_file_name), "site", "n1", {}),
    ("fullwidth-index", with_entry(fullwidth_index), "site", "n2", {}),
    ("backslash-file-name", with_entry(backslash_file_name), "site", "n3", {}),
    ("percent-file-name", with_entry(percent_file_name), "site", "n4", {}),
    ("newline-file-name", with_entry(newline_file_name), "site", "n5", {}),
    ("non-utf8-file-name", with_entry(non_utf8_file_name), "site", "n6", {}),
    # index
    ("no-index", no_index, "site", "i1", {}),
    ("index-is-folder", index_is_a_folder, "site", "i2", {}),
    ("index-only-in-subfolder", index_only_in_subfolder, "site", "i3", {}),
    # limits
    ("huge-sparse-file", with_entry(huge_sparse_file), "site", "z1", {}),
    ("over-file-limit", with_entry(over_file_limit), "site", "z2", {"max_file_bytes": 1024}),
    ("too-many-files", with_entry(too_many_files), "site", "z3", {"max_files": 5}),
    ("over-total-bytes", with_entry(over_total_bytes), "site", "z4", {"max_total_bytes": 2000}),
    ("too-deep", with_entry(too_deep), "site", "z5", {"max_depth": 4}),
    ("too-many-folders", with_entry(too_many_folders), "site", "z6", {"max_dirs": 3}),
    # slugs
    ("slug-dotdot", plain, "site", "..", {}),
    ("slug-traversal", plain, "site", "../../etc", {}),
    ("slug-internal-dir", plain, "site", ".versions", {}),
    ("slug-upper", plain, "site", "Hello", {}),
    ("slug-underscore", plain, "site", "a_b", {}),
    ("slug-dot", plain, "site", "a.b", {}),
    ("slug-leading-dash", plain, "site", "-lead", {}),
    ("slug-trailing-dash", plain, "site", "trail-", {}),
    ("slug-too-long", plain, "site", "x" * 64, {}),
    ("slug-empty", plain, "site", "", {}),
    ("slug-percent", plain, "site", "hello%2f", {}),
    ("slug-fullwidth", plain, "site", "\uff48ello", {}),
    ("slug-nul", plain, "site", "hello\x00", {}),
    ("slug-slash", plain, "site", "a/b", {}),
    ("slug-newline", plain, "site", "hello\n", {}),
]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("build", "source_dir", "slug", "limits"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
async def test_hostile_input_is_refused_and_nothing_changes(build, source_dir, slug, limits, work, outside,
                                                           published, make_target, request_for, snapshot):
    baseline = work.parent / "baseline-src"
    baseline.mkdir()
    (baseline / "index.html").write_text("<p>baseline</p>")
    await make_target().publish(request_for("baseline-src", "baseline", work_dir=str(work.parent)))
    build(work, outside)
    before = snapshot()
    live_before = os.readlink(published / "baseline")

    with pytest.raises(Invalid) as caught:
        await make_target(**limits).publish(request_for(source_dir, slug))

    assert caught.value.field in ("source_dir", "slug")
    assert snapshot() == before
    assert sorted(os.listdir(published)) == [".locks", ".tmp", ".trash", ".versions", "baseline"]
    assert os.listdir(published / ".tmp") == []
    assert os.readlink(published / "baseline") == live_before
    assert not any(slug and name.startswith(f"{slug}.") for name in os.listdir(published / ".versions"))


@pytest.mark.parametrize("source_dir", ["../outside", "site/../../outside", "/etc"])
async def test_a_refused_first_deploy_creates_nothing(source_dir, work, outside, published, make_target,
                                                      request_for, snapshot):
    plain(work, outside)
    before = snapshot()
    with pytest.raises(Invalid):
        await make_target().publish(request_for(source_dir, "first"))
    assert not published.exists()
    assert snapshot() == before


async def test_refusals_name_the_reason(work, outside, make_target, request_for):
    with_entry(symlink_to_passwd)(work, outside)
    with pytest.raises(Invalid) as caught:
        await make_target().publish(request_for("site", "why"))
    assert caught.value.field == "source_dir"
    assert "passwd.html" in caught.value.reason and "symlink" in caught.value.reason
