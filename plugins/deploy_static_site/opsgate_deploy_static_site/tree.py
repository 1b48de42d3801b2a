"""Walking and copying an agent's static tree without ever following a link.

Everything is done relative to open directory descriptors (`dir_fd`,
`os.scandir(fd)`, `O_NOFOLLOW`), so renaming or re-linking a parent folder
during the walk cannot redirect it. `scan_tree` validates with `lstat` only
and writes nothing; `copy_tree` re-checks every entry on its open descriptor
(type, inode, link count, actual bytes read) while copying, so what is
published is exactly what was validated. Both raise `Invalid("source_dir", ...)`.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass, field

from opsgate.errors import Invalid
from opsgate_deploy_static_site.rules import INDEX, check_name, extension_of

log = logging.getLogger(__name__)

__all__ = ["Limits", "Totals", "copy_tree", "open_source_root", "printable", "scan_tree", "split_source"]

FIELD = "source_dir"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What a tree may contain."""

    max_files: int
    max_dirs: int
    max_depth: int
    max_total_bytes: int
    max_file_bytes: int
    extensions: frozenset[str]


@dataclass
class Totals:
    """Counts of a walk so far."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    has_index: bool = False
    paths: list[str] = field(default_factory=list)


def printable(rel: str) -> str:
    """`rel` with control, non-ASCII and undecodable characters escaped, cut to 200 characters."""
    text = ascii(rel)[1:-1]
    return text if len(text) <= 200 else text[:197] + "..."


def _refuse(rel: str, reason: str) -> Invalid:
    return Invalid(FIELD, f"{printable(rel)}: {reason}" if rel else reason)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlinks are not allowed"
    if stat.S_ISFIFO(mode):
        return "FIFOs are not allowed"
    if stat.S_ISSOCK(mode):
        return "sockets are not allowed"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device files are not allowed"
    return "only regular files and folders are allowed"


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def split_source(source_dir: object) -> list[str]:
    """The components of a `source_dir`, refusing anything that is not a plain relative path."""
    if not isinstance(source_dir, str):
        raise Invalid(FIELD, "must be a string")
    if source_dir.startswith("/"):
        raise Invalid(FIELD, "must be a path relative to the work dir, not absolute")
    if len(source_dir) > 1024:
        raise Invalid(FIELD, "too long")
    parts = source_dir[:-1].split("/") if source_dir.endswith("/") else source_dir.split("/")
    if parts == [""] or parts == ["."]:
        raise Invalid(FIELD, "must name a folder inside the work dir, not the work dir itself")
    for part in parts:
        reason = check_name(part)
        if reason:
            raise Invalid(FIELD, reason)
    return parts


def open_source_root(work_dir: str, source_dir: str) -> int:
    """An fd of `source_dir` inside `work_dir`, reached without following any link below the work dir."""
    parts = split_source(source_dir)
    if not isinstance(work_dir, str) or not os.path.isabs(work_dir) or "\x00" in work_dir:
        raise Invalid("work_dir", "must be an absolute path")
    try:
        fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Invalid("work_dir", f"cannot open the work dir ({errno.errorcode.get(exc.errno, exc.errno)})") from exc
    try:
        for depth, part in enumerate(parts):
            rel = "/".join(parts[: depth + 1])
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError as exc:
                raise _refuse(rel, "does not exist in the work dir") from exc
            except OSError as exc:
                raise _refuse(rel, "cannot be read") from exc
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(rel, "is not a folder" if stat.S_ISREG(st.st_mode) else _kind(st.st_mode))
            child = _open_dir(part, fd, st, rel)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_dir(name: str, parent_fd: int, st: os.stat_result, rel: str) -> int:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        raise _refuse(rel, "changed while being read (symlinks are not allowed)") from exc
    if not _same(os.fstat(fd), st):
        os.close(fd)
        raise _refuse(rel, "changed while being read")
    return fd


def _check_entry(name: str, rel: str, st: os.stat_result, depth: int, root_dev: int, limits: Limits,
                 totals: Totals) -> None:
    reason = check_name(name)
    if reason:
        raise _refuse(rel, reason)
    if st.st_dev != root_dev:
        raise _refuse(rel, "crosses into another filesystem")
    if stat.S_ISDIR(st.st_mode):
        if depth + 1 > limits.max_depth:
            raise _refuse(rel, f"nested deeper than {limits.max_depth} folders")
        totals.dirs += 1
        if totals.dirs > limits.max_dirs:
            raise _refuse("", f"more than {limits.max_dirs} folders")
        return
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(rel, _kind(st.st_mode))
    if extension_of(name) not in limits.extensions:
        raise _refuse(rel, f"file type not allowed (allowed: {', '.join(sorted(limits.extensions))})")
    if st.st_nlink != 1:
        raise _refuse(rel, "hard-linked files are not allowed")
    if st.st_size > limits.max_file_bytes:
        raise _refuse(rel, f"larger than {limits.max_file_bytes} bytes")
    totals.files += 1
    if totals.files > limits.max_files:
        raise _refuse("", f"more than {limits.max_files} files")
    if totals.bytes + st.st_size > limits.max_total_bytes:
        raise _refuse("", f"more than {limits.max_total_bytes} bytes in total")


def scan_tree(root_fd: int, limits: Limits) -> Totals:
    """Validate the tree under `root_fd` with `lstat` only; writes nothing."""
    totals = Totals()
    _scan(root_fd, "", 0, os.fstat(root_fd).st_dev, limits, totals)
    if not totals.has_index:
        raise _refuse("", f"no {INDEX} at the root of the tree")
    return totals


def _scan(fd: int, prefix: str, depth: int, root_dev: int, limits: Limits, totals: Totals) -> None:
    with os.scandir(fd) as entries:
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            _check_entry(entry.name, rel, st, depth, root_dev, limits, totals)
            if stat.S_ISDIR(st.st_mode):
                child = _open_dir(entry.name, fd, st, rel)
                try:
                    _scan(child, rel + "/", depth + 1, root_dev, limits, totals)
                finally:
                    os.close(child)
            else:
                totals.bytes += st.st_size
                totals.paths.append(rel)
                if depth == 0 and entry.name == INDEX:
                    totals.has_index = True


def copy_tree(src_fd: int, dst_fd: int, limits: Limits) -> Totals:
    """Copy the tree under `src_fd` into the empty folder `dst_fd`, re-validating every entry on its fd."""
    totals = Totals()
    _copy(src_fd, dst_fd, "", 0, os.fstat(src_fd).st_dev, limits, totals)
    if not totals.has_index:
        raise _refuse("", f"no {INDEX} at the root of the tree")
    return totals


def _copy(src: int, dst: int, prefix: str, depth: int, root_dev: int, limits: Limits, totals: Totals) -> None:
    with os.scandir(src) as entries:
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            _check_entry(entry.name, rel, st, depth, root_dev, limits, totals)
            if stat.S_ISDIR(st.st_mode):
                child = _open_dir(entry.name, src, st, rel)
                try:
                    os.mkdir(entry.name, 0o755, dir_fd=dst)
                    out = os.open(entry.name, _DIR_FLAGS, dir_fd=dst)
                    try:
                        _copy(child, out, rel + "/", depth + 1, root_dev, limits, totals)
                    finally:
                        os.close(out)
                finally:
                    os.close(child)
            else:
                _copy_file(entry.name, rel, st, src, dst, limits, totals)
                totals.paths.append(rel)
                if depth == 0 and entry.name == INDEX:
                    totals.has_index = True


def _copy_file(name: str, rel: str, st: os.stat_result, src: int, dst: int, limits: Limits,
               totals: Totals) -> None:
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=src)
    except OSError as exc:
        raise _refuse(rel, "changed while being read (symlinks are not allowed)") from exc
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or not _same(now, st):
            raise _refuse(rel, "changed while being read")
        if now.st_nlink != 1:
            raise _refuse(rel, "hard-linked files are not allowed")
        out = os.open(name, _OUT_FLAGS, 0o644, dir_fd=dst)
        try:
            size = 0
            while chunk := os.read(fd, _CHUNK):
                size += len(chunk)
                if size > limits.max_file_bytes:
                    raise _refuse(rel, f"larger than {limits.max_file_bytes} bytes")
                if totals.bytes + size > limits.max_total_bytes:
                    raise _refuse("", f"more than {limits.max_total_bytes} bytes in total")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
        finally:
            os.close(out)
        totals.bytes += size
    finally:
        os.close(fd)
