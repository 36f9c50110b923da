"""The inline SQLite driver: the standard sqlite3 module called straight from the event
loop, as a SQLAlchemy dialect (``sqlite+inline``), with the connection settings the service
uses. The one fast layer kept beside the ordinary path; README (Benchmarks) gives the
figure that keeps it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any
from urllib.parse import quote

from sqlalchemy import event, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import await_, in_greenlet

from .storage import SQLiteStorage

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "InlineSQLiteDialect", "begin_immediate", "tune_sqlite"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


class InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """The standard sqlite3 driver, called straight from the event loop.

    aiosqlite runs each call (cursor, execute, fetch, close: 9 to 16 per request) on a
    thread of its own connection and wakes the loop for each answer; those handoffs cost
    more than the queries, which on a local WAL file take microseconds. Readers never wait
    in WAL mode, and this process's writers take turns on ``Database._write_lock`` before
    BEGIN IMMEDIATE, so a call only waits on SQLite when another process holds the write
    lock (a migration), for as long as that transaction lasts.
    """

    is_async = True
    supports_statement_cache = True
    storage: SQLiteStorage | None = None  # set by Database: every call is checked with it

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        # mode=rw: a connection never creates the file. Alembic does; a deleted database is
        # a fault to report, not an empty one to start afresh in.
        return [f"file:{quote(args[0])}?mode=rw"], {
            **kwargs,
            "uri": True,
            "factory": _InlineConnection,
        }

    # AsyncConnection.execute insists that a statement awaited something; a finished
    # coroutine satisfies it without yielding to the event loop.
    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        self._before_call()
        super().do_execute(cursor, statement, parameters, context)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        self._before_call()
        super().do_execute_no_params(cursor, statement, context)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        self._before_call()
        super().do_executemany(cursor, statement, parameters, context)

    def do_commit(self, dbapi_connection: Any) -> None:
        if self.storage is not None:
            self.storage.before_call()
        super().do_commit(dbapi_connection)

    def do_rollback(self, dbapi_connection: Any) -> None:
        # With the -shm index unwritable a transaction is left as it is (a call could be a
        # SIGBUS); its connection is held unclosed and closed when the fault clears.
        if self.storage is None or self.storage.fault is None or self.storage.index_writable():
            super().do_rollback(dbapi_connection)

    def do_close(self, dbapi_connection: Any) -> None:
        if self.storage is not None:
            self.storage.close(dbapi_connection)
        else:
            super().do_close(dbapi_connection)

    def _before_call(self) -> None:
        if self.storage is not None:
            self.storage.before_call()
        _awaited()


class _InlineCursor(sqlite3.Cursor):
    async def _async_soft_close(self) -> None:
        """What AsyncConnection awaits after a statement; rows are already in memory."""


class _InlineConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _InlineCursor) -> Any:
        return super().cursor(factory)


async def _nothing() -> None:
    return None


def _awaited() -> None:
    if in_greenlet():
        await_(_nothing())


registry.register("sqlite.inline", __name__, "InlineSQLiteDialect")


async def begin_immediate(connection: sqlite3.Connection, timeout: float) -> None:
    """BEGIN IMMEDIATE on a connection whose busy timeout is 0, waiting up to ``timeout``
    seconds for another process's write to end without holding up the event loop:
    SQLite's own busy handler would sleep inside the call, and every request with it, for
    as long as that write lasts (a migration, say)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


def _configure_sqlite(
    connection: sqlite3.Connection, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> None:
    # No implicit transactions: BEGIN is ours to emit, so writes can say IMMEDIATE.
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable across application crashes in WAL mode; only power loss can
    # roll back the last transactions.
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Database pages are read and written, never memory-mapped: a mapped page whose file
    # fails (immutable, gone, I/O error) is a SIGBUS that kills the process, where a read
    # or write is an error the service reports. (WAL's -shm index is mapped whatever this
    # says: see ``storage``.)
    cursor.execute("PRAGMA mmap_size=0")
    cursor.close()


def tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        storage = getattr(engine.dialect, "storage", None)
        if storage is not None:
            storage.before_call()
        _configure_sqlite(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        storage = getattr(conn.dialect, "storage", None)
        if storage is not None:
            storage.before_call()
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        if immediate and in_greenlet():
            # Waits on another process's write by sleeping on the event loop, not in SQLite.
            sqlite = conn.connection.driver_connection
            sqlite.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            try:
                await_(begin_immediate(sqlite, SQLITE_BUSY_TIMEOUT_MS / 1000))  # type: ignore[arg-type]
            finally:
                sqlite.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # type: ignore[union-attr]
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
