"""Files in a session's data directory, read and written by the host without trusting it.

The sandbox controls that directory: anything in it may be a symlink, a FIFO or a device
node planted to make the host read or write elsewhere, so nothing here follows links and
only regular files are read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OutputFile",
    "Snapshot",
    "changed_files",
    "remove_new",
    "safe_name",
    "snapshot",
    "usage",
    "write_input",
]

MAX_ENTRIES = 2000
MAX_DEPTH = 8

Snapshot = dict[str, tuple[int, int, int]]


@dataclass(frozen=True)
class OutputFile:
    path: str  # as the code sees it: /mnt/data/...
    data: bytes


def safe_name(name: str) -> str:
    """A file name usable in /mnt/data: its last path component, never '.', '..' or empty."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "")
    if base in ("", ".", ".."):
        base = "file"
    return base[:200]


def snapshot(root: Path) -> Snapshot:
    """Regular files under ``root`` (links not followed): relative path → size, mtime, inode."""
    found: Snapshot = {}
    stack: list[tuple[str, int]] = [("", 0)]
    while stack and len(found) < MAX_ENTRIES:
        relative, depth = stack.pop()
        try:
            entries = list(os.scandir(root / relative if relative else root))
        except OSError:
            continue
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
                stack.append((name, depth + 1))
            elif stat.S_ISREG(info.st_mode):
                found[name] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return found


def _read_regular(root: Path, relative: str, limit: int) -> bytes | None:
    """The file's bytes if every component is a real directory and it is a regular file."""
    parts = relative.split("/")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)
    try:
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(file_fd, min(1 << 20, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        return data if len(data) <= limit else None
    finally:
        os.close(file_fd)


def changed_files(
    root: Path, before: Snapshot, *, max_files: int, max_bytes: int
) -> tuple[list[OutputFile], Snapshot]:
    """Files new or changed since ``before`` (at most ``max_files`` and ``max_bytes`` in
    all), and the new snapshot."""
    after = snapshot(root)
    out: list[OutputFile] = []
    budget = max_bytes  # for all the files together: the service holds them in memory
    for relative in sorted(after):
        if before.get(relative) == after[relative]:
            continue
        if len(out) >= max_files or budget <= 0:
            break
        with contextlib.suppress(OSError):
            data = _read_regular(root, relative, budget)
            if data is not None:
                out.append(OutputFile(f"/mnt/data/{relative}", data))
                budget -= len(data)
    return out, after


def write_input(root: Path, name: str, data: bytes, *, owner: int | None = None) -> str:
    """Write an input file at the top of ``root``; returns its path as the code sees it."""
    name = safe_name(name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.EWOULDBLOCK):
                raise
            # Something the code put there under that name: replace it with the file.
            try:
                os.unlink(name, dir_fd=dir_fd)
            except IsADirectoryError:
                os.rmdir(name, dir_fd=dir_fd)
            fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, f"{name} is not a regular file")
            if owner is not None:
                os.fchown(fd, owner, owner)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)
    return f"/mnt/data/{name}"


def usage(root: Path, *, max_entries: int) -> tuple[int, int]:
    """Bytes on disk and entries under ``root`` (links not followed); counting stops past
    ``max_entries``."""
    total, entries = 0, 0
    stack = [str(root)]
    while stack and entries <= max_entries:
        try:
            scanned = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in scanned:
            entries += 1
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            total += info.st_blocks * 512
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
    return total, entries


def remove_new(root: Path, before: Snapshot) -> None:
    """Delete what appeared or changed since ``before``: new top-level entries whole, changed
    files one by one (their directories opened without following links)."""
    known_top = {name.split("/", 1)[0] for name in before}
    for entry in list(os.scandir(root)):
        if entry.name in known_top:
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)  # fd-based on Linux: never leaves the tree
            else:
                os.unlink(entry.path)
    for relative, signature in snapshot(root).items():
        if before.get(relative) == signature:
            continue
        parts = relative.split("/")
        with contextlib.suppress(OSError):
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for part in parts[:-1]:
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                    os.close(fd)
                    fd = next_fd
                os.unlink(parts[-1], dir_fd=fd)
            finally:
                os.close(fd)
