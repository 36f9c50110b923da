"""Per-service log files in .stack/logs: timestamped lines, rotated by size; reading the tail
of one or all services and following them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

__all__ = ["LogWriter", "follow", "tail"]

MAX_BYTES = 1_000_000
BACKUPS = 3
_STAMP = "%Y-%m-%dT%H:%M:%S"


class LogWriter:
    """Appends `<timestamp> <line>`; at MAX_BYTES moves name.log → name.log.1 → … .BACKUPS."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - long-lived

    def write(self, line: str) -> None:
        now = datetime.now()
        self._fh.write(f"{now.strftime(_STAMP)}.{now.microsecond // 1000:03d} {line.rstrip()}\n")
        if self._fh.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fh = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def close(self) -> None:
        self._fh.close()


def _files(path: Path) -> list[Path]:
    """Oldest first: name.log.3, .2, .1, name.log."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:] or 0))
    return [*(p for p in rotated if p.suffix[1:].isdigit()), *([path] if path.exists() else [])]


def tail(path: Path, n: int) -> list[str]:
    """The last n lines across the rotated files."""
    lines: list[str] = []
    for f in reversed(_files(path)):
        with open(f, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines() + lines
        if len(lines) >= n:
            break
    return lines[-n:] if n > 0 else []


def strip_stamp(line: str) -> str:
    stamp, _, rest = line.partition(" ")
    return rest if len(stamp) == 23 and stamp[10:11] == "T" else line


def merged_tail(paths: dict[str, Path], n: int) -> list[tuple[str, str]]:
    """(service, line) for the last n lines of each service, merged by timestamp."""
    rows = [(line[:23], name, line) for name, p in paths.items() for line in tail(p, n)]
    rows.sort(key=lambda r: r[0])
    return [(name, line) for _, name, line in rows]


def follow(
    paths: dict[str, Path], stop: float | None = None, poll: float = 0.2
) -> Iterator[tuple[str, str]]:
    """New lines from the end of each file as they come; survives rotation (inode change)."""
    state: dict[str, tuple[int, int]] = {}
    for name, p in paths.items():
        st = p.stat() if p.exists() else None
        state[name] = (st.st_ino, st.st_size) if st else (0, 0)
    deadline = None if stop is None else time.monotonic() + stop
    while deadline is None or time.monotonic() < deadline:
        for name, p in paths.items():
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            ino, pos = state[name]
            if st.st_ino != ino or st.st_size < pos:
                pos = 0
            if st.st_size > pos:
                with open(p, encoding="utf-8", errors="replace") as fh:
                    fh.seek(pos)
                    chunk = fh.read()
                    pos = fh.tell()
                for line in chunk.splitlines():
                    yield name, line
            state[name] = (st.st_ino, pos)
        time.sleep(poll)
