"""Database engine and sessions: async SQLAlchemy over SQLite (WAL) or PostgreSQL (psycopg)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from orjson import dumps as _dump_json
from orjson import loads as _parse_json
from sqlalchemy import event, pool, text
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_, in_greenlet

from .config import PROJECT_ROOT, ConfigError
from .direct import (
    DirectConnection,
    DirectPostgres,
    DirectSQLite,
    StatementCache,
    begin_immediate,
)

__all__ = ["Database", "MigrationState", "Statements", "alembic_config", "head_revision"]

SQLITE_BUSY_TIMEOUT_MS = 30_000

# What runs Core statements (``execute``, ``scalar``): an ORM session, or a connection
# from ``read_core()`` / ``write_core()``.
Statements = AsyncSession | DirectConnection


def alembic_config(url: URL | None = None) -> AlembicConfig:
    """The project's Alembic configuration, optionally pointed at ``url``."""
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        config.attributes["database_url"] = url
    return config


@cache  # the migrations on disk do not change under a running process
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


class MigrationState:
    """Where the database stands against the migration head."""

    def __init__(self, current: str | None, head: str | None) -> None:
        self.current = current
        self.head = head

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head

    def problem(self) -> str:
        return (
            f"the database schema is at revision {self.current or 'none (empty database)'} but "
            f"this version needs {self.head}: run `alembic upgrade head` from the project root"
        )


class Database:
    """One engine per process; ``read()`` and ``write()`` hand out sessions,
    ``read_core()`` and ``write_core()`` direct connections for the busiest paths."""

    def __init__(self, url: URL, *, pool_size: int = 20) -> None:
        self.url = url
        self.dialect = url.get_backend_name()
        if self.is_sqlite:
            folder = Path(url.database or "").parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"cannot create {folder} for the SQLite database: {exc.strerror or exc}"
                ) from None
            async_url = url.set(drivername="sqlite+inline")
        else:
            async_url = url.set(drivername="postgresql+psycopg")
        # Both drivers hand JSON columns to these (psycopg through its adapters).
        options = {"json_deserializer": _json_loads, "json_serializer": _json_dumps}
        self.engine: AsyncEngine = create_async_engine(
            async_url,
            pool_size=pool_size,
            max_overflow=10,
            pool_pre_ping=not self.is_sqlite,
            **options,
        )
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue here, in order,
        # rather than in SQLite's busy handler, which sleeps and retries (long, unfair
        # tails) and, with the inline driver, would hold up the event loop.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_owner: asyncio.Task[Any] | None = None
        # The Core paths run directly on the driver (see ``direct``); SQLite's on
        # connections of their own, PostgreSQL's on the pool's.
        self._statements = StatementCache(
            self.engine.dialect, _json_loads if self.is_sqlite else None, _json_dumps
        )
        self._direct_readers: list[DirectSQLite] = []
        self._direct_writer: DirectSQLite | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; whatever it did is rolled back at the end."""
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        On SQLite the transaction starts with BEGIN IMMEDIATE, taking the write lock up
        front: a deferred transaction that reads and then writes can fail with "database is
        locked" without waiting, whereas IMMEDIATE waits out the busy timeout.
        """
        async with self._writer(), self.sessions() as session:
            await session.connection(execution_options={"sqlite_immediate": True})
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def read_core(self) -> AsyncIterator[DirectConnection]:
        """A connection for Core statements (``execute``, ``scalar``) in a transaction
        rolled back at the end: what ``read()`` gives without the session's bookkeeping,
        for the busiest read paths. The statements run directly on the driver."""
        if not self.is_sqlite:
            async with self._postgres() as conn:
                yield conn  # the pool rolls back what a returned connection began
            return
        conn = self._direct_readers.pop() if self._direct_readers else self._open_direct()
        conn.begin()
        try:
            yield conn
        finally:
            try:
                conn.rollback()
            except BaseException:
                conn.close()  # in an unknown state: not handed out again
                raise
            self._direct_readers.append(conn)

    @asynccontextmanager
    async def write_core(self) -> AsyncIterator[DirectConnection]:
        """``write()`` for Core statements, run directly on the driver: commit on success,
        rollback on error. SQLite's take the write lock and BEGIN IMMEDIATE on one
        connection kept for writes (writers take turns anyway)."""
        if not self.is_sqlite:
            async with self._postgres() as conn:
                try:
                    yield conn
                    await conn.connection.commit()
                except BaseException:
                    await conn.connection.rollback()
                    raise
            return
        async with self._writer():
            if self._direct_writer is None:
                # Only ever in a transaction begun by begin_immediate(), which waits for
                # other processes itself; holding the write lock, it never waits again.
                self._direct_writer = self._open_direct(busy_timeout_ms=0)
            conn = self._direct_writer
            await conn.begin_immediate(SQLITE_BUSY_TIMEOUT_MS / 1000)
            try:
                yield conn
                conn.commit()
            except BaseException:
                try:
                    conn.rollback()
                except BaseException:
                    self._direct_writer = None  # in an unknown state: open a new one next time
                    conn.close()
                    raise
                raise

    @asynccontextmanager
    async def _postgres(self) -> AsyncIterator[DirectPostgres]:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            yield DirectPostgres(raw.driver_connection, self._statements)

    def _open_direct(self, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> DirectSQLite:
        dialect = self.engine.dialect
        args, kwargs = dialect.create_connect_args(self.engine.url)
        connection = sqlite3.connect(*args, **kwargs)
        _configure_sqlite(connection, busy_timeout_ms)
        return DirectSQLite(connection, self._statements)

    def _writer(self) -> AbstractAsyncContextManager[object]:
        return self._sqlite_writer() if self._write_lock is not None else nullcontext()

    @asynccontextmanager
    async def _sqlite_writer(self) -> AsyncIterator[None]:
        assert self._write_lock is not None
        task = asyncio.current_task()
        if task is not None and self._write_owner is task:
            # Waiting on our own lock would hang for ever; fail where the mistake is.
            raise RuntimeError("a write session is already open in this task")
        async with self._write_lock:
            self._write_owner = task
            try:
                yield
            finally:
                self._write_owner = None

    async def ping(self) -> float:
        """Round-trip a trivial query; returns the latency in milliseconds."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def migration_state(self) -> MigrationState:
        async with self.engine.connect() as conn:
            current = await conn.run_sync(_current_revision)
        return MigrationState(current, head_revision())

    async def dispose(self) -> None:
        for conn in [*self._direct_readers, *filter(None, [self._direct_writer])]:
            conn.close()
        self._direct_readers.clear()
        self._direct_writer = None
        await self.engine.dispose()


def _json_loads(text: str | bytes) -> Any:
    """JSON columns decoded (text from SQLite, bytes from psycopg): a page of 20 messages
    decodes 80 of them. The empty values most rows carry skip the parser (fresh objects
    each time: callers may mutate them), and orjson parses the rest 4x faster than json."""
    if len(text) <= 4:
        if text in ("{}", b"{}"):
            return {}
        if text in ("[]", b"[]"):
            return []
        if text in ("null", b"null"):
            return None
    return _parse_json(text)


def _json_dumps(value: Any) -> str:
    """JSON columns as they are stored, by orjson (10x faster than json): what it cannot
    write (an integer past 64 bits) no response could carry either, so it is refused here,
    before it is stored, not on every later read."""
    return _dump_json(value).decode()


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

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool

    def create_connect_args(self, url: URL) -> Any:
        args, kwargs = super().create_connect_args(url)
        return args, {**kwargs, "factory": _InlineConnection}

    # AsyncConnection.execute insists that a statement awaited something; a finished
    # coroutine satisfies it without yielding to the event loop.
    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        _awaited()
        super().do_execute(cursor, statement, parameters, context)

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        _awaited()
        super().do_execute_no_params(cursor, statement, context)

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        _awaited()
        super().do_executemany(cursor, statement, parameters, context)


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


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


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
    cursor.close()


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _configure_sqlite(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
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
