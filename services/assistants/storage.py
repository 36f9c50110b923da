"""Storage faults of a SQLite database: its file deleted, replaced, made unwritable, or on a
full filesystem, told from the file itself by path (never by opening it: closing a second
descriptor of a file drops the process's POSIX locks on it, which SQLite relies on).

WAL's ``-shm`` index is memory-mapped (SQLite offers no other way for several connections),
and a write to a mapped page of a file made immutable is a SIGBUS, not an error: ext4
write-protects the pages when the flag is set. So while a fault lasts no SQLite call is
made at all (``SQLiteStorage.before_call`` guards each one), and while the index itself is
unwritable not even a rollback or a close (the last close of a WAL database checkpoints,
writing the index): those connections are held, unclosed, until the fault clears.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ServiceUnavailable

__all__ = ["FileIdentity", "SQLiteFiles", "SQLiteStorage", "StorageFault", "driver_fault"]

log = logging.getLogger(__name__)

# How often a session's start re-checks the files (a few system calls).
CHECK_SECONDS = 0.05

# Below this, a write (a WAL frame, a page of the journal) may not fit.
MIN_FREE_BYTES = 64 * 1024

# SQLite's primary result codes that say the storage, not the statement, is at fault.
STORAGE_ERRORS = {
    sqlite3.SQLITE_READONLY: "read-only",
    sqlite3.SQLITE_IOERR: "I/O error",
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_FULL: "full",
    sqlite3.SQLITE_CANTOPEN: "cannot be opened",
    sqlite3.SQLITE_NOTADB: "not a database",
}


class StorageFault(ServiceUnavailable):
    """503: the database cannot be used now; the message says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"The database is unavailable: {reason}. Nothing was stored; retry later.",
            code="database_unavailable",
        )
        self.reason = reason


@dataclass(frozen=True)
class FileIdentity:
    device: int
    inode: int


class SQLiteFiles:
    """The database file and its WAL companions, checked by path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.companions = [Path(f"{path}-wal"), Path(f"{path}-shm")]

    def identity(self) -> FileIdentity | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return FileIdentity(stat.st_dev, stat.st_ino)

    def problem(self, opened: FileIdentity | None) -> str | None:
        """Why the file cannot serve (None when it can); ``opened`` is the file in use."""
        current = self.identity()
        if current is None:
            return f"the database file {self.path} was deleted" if opened else None
        if opened is not None and current != opened:
            return f"the database file {self.path} was replaced by another file"
        for path in [self.path, *self.companions, self.path.parent]:
            if path.exists() and not os.access(path, os.W_OK):
                return f"{path} is not writable ({self._why_unwritable(path)})"
        try:
            fs = os.statvfs(self.path.parent)
        except OSError as exc:
            return f"the filesystem holding {self.path} cannot be read ({exc.strerror})"
        if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
            return f"the filesystem holding {self.path} is full"
        return None

    @staticmethod
    def _why_unwritable(path: Path) -> str:
        try:
            if os.statvfs(path).f_flag & os.ST_RDONLY:
                return "read-only filesystem"
        except OSError:
            pass
        return "permission denied or immutable"


def driver_fault(exc: BaseException) -> str | None:
    """The storage fault a SQLite driver error reports, if it is one (not a busy lock, not
    a constraint, not a statement's own mistake)."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is None:
        return None
    kind = STORAGE_ERRORS.get(code & 0xFF)
    return f"SQLite cannot use the database ({kind}): {orig}" if kind else None


class SQLiteStorage:
    """The state of one SQLite database's storage: the file in use, the fault if any, and
    the connections held, unclosed, while it lasts."""

    def __init__(self, path: Path) -> None:
        self.files = SQLiteFiles(path)
        self.shm = self.files.companions[1]
        self.opened = self.files.identity()
        self.fault: str | None = None
        self.reopened = 0  # how many times the storage came back from a fault
        self._driver_fault: str | None = None  # a storage error the driver reported
        self._checked_at = float("-inf")
        self._held: list[Any] = []

    def before_call(self) -> None:
        """Before any SQLite call: none while a fault lasts, nor on an -shm that became
        unwritable (one system call; the window left is the call's own microseconds)."""
        if self.fault is None and not os.access(self.shm, os.W_OK) and self.shm.exists():
            self._set(f"{self.shm} is not writable ({self.files._why_unwritable(self.shm)})")
        if self.fault is not None:
            raise StorageFault(self.fault)

    def index_writable(self) -> bool:
        """Whether a SQLite call may write the mapped -shm index without a SIGBUS."""
        return os.access(self.shm, os.W_OK) or not self.shm.exists()

    def close(self, connection: Any) -> None:
        """Close a driver connection, or keep it, unclosed, while its index is unwritable."""
        if self.fault is None or self.index_writable():
            connection.close()
        else:
            self._held.append(connection)

    def due(self) -> bool:
        return time.monotonic() - self._checked_at >= CHECK_SECONDS

    def driver_failed(self, reason: str) -> None:
        self._driver_fault = reason

    def changed_file(self) -> bool:
        """Whether the file at the path is no longer the one in use (deleted, replaced)."""
        return self.opened is not None and self.files.identity() != self.opened

    def check(self, probe_write: Callable[[], None]) -> tuple[str | None, bool]:
        """Re-check the files and, after a driver error, whether a write commits again.
        Returns the fault and whether the connections must be renewed (a new file, or the
        end of a fault)."""
        self._checked_at = time.monotonic()
        problem = self.files.problem(self.opened)
        if self.opened is None and problem is None:
            self.opened = self.files.identity()  # created (migrated) since the start
        if problem is None and self._driver_fault is not None:
            try:
                probe_write()
                self._driver_fault = None
            except Exception as exc:  # whatever it is, the database is still not writable
                problem = driver_fault(exc) or self._driver_fault
        if problem == self.fault:
            return problem, False
        if problem is not None and "replaced" in problem:
            # The file now at the path is the database (a restored backup, say): reported
            # once, then served with fresh connections, once its schema has been checked.
            log.error("database storage fault: %s; opening the new file", problem)
            self.opened = self.files.identity()
            self._set(problem)
            return problem, True
        if problem is None:
            self._set(None)
            self.opened = self.files.identity()
            self.reopened += 1
            log.warning("the database is usable again")
            return None, True
        log.error("database storage fault: %s", problem)
        self._set(problem)
        return problem, False

    def release_held(self) -> None:
        """After a fault: close what was kept open through it."""
        held, self._held = self._held, []
        for connection in held:
            try:
                connection.close()
            except Exception as exc:  # a connection of a deleted file may not close cleanly
                log.info("closing a connection held through a fault: %s", exc)

    def _set(self, fault: str | None) -> None:
        self.fault = fault
