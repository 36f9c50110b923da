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
from urllib.parse import quote

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from orjson import dumps as _dump_json
from orjson import loads as _parse_json
from sqlalchemy import event, pool, text
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util.concurrency import await_, in_greenlet

from .config import PROJECT_ROOT, ConfigError
from .storage import SQLiteStorage, StorageFault, driver_fault

__all__ = ["Database", "MigrationState", "alembic_config", "begin_immediate", "head_revision"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
    """One engine per process; ``read()`` and ``write()`` hand out sessions.

    A SQLite file is watched for storage faults (``check_storage``, see ``storage``): while
    one lasts, every session is refused with ``StorageFault`` (a 503) and no SQLite call is
    made; when it clears, fresh connections serve.
    """

    def __init__(self, url: URL, *, pool_size: int = 20) -> None:
        self.url = url
        self.dialect = url.get_backend_name()
        self.storage: SQLiteStorage | None = None
        if self.is_sqlite:
            self.storage = SQLiteStorage(Path(url.database or ""))
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
            self.engine.dialect.storage = self.storage  # type: ignore[attr-defined]
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Writers of this process queue here, in order,
        # rather than in SQLite's busy handler, which sleeps and retries (long, unfair
        # tails) and, with the inline driver, would hold up the event loop.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_owner: asyncio.Task[Any] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def storage_fault(self) -> str | None:
        """Why the database cannot be used now, if it cannot (SQLite's storage faults)."""
        return self.storage.fault if self.storage is not None else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; whatever it did is rolled back at the end."""
        await self._usable()
        try:
            async with self.sessions() as session:
                yield session
        except (OperationalError, DBAPIError) as exc:
            raise await self._fault(exc) from exc

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits on success and rolls back on error.

        On SQLite the transaction starts with BEGIN IMMEDIATE, taking the write lock up
        front: a deferred transaction that reads and then writes can fail with "database is
        locked" without waiting, whereas IMMEDIATE waits out the busy timeout.
        """
        await self._usable()
        try:
            async with self._writer(), self.sessions() as session:
                await session.connection(execution_options={"sqlite_immediate": True})
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
        except (OperationalError, DBAPIError) as exc:
            raise await self._fault(exc) from exc
        if self.storage is not None and self.storage.changed_file():
            # Committed into a file no longer at its path (deleted or replaced): lost.
            await self.check_storage()
            raise StorageFault(self.storage_fault or "the database file changed")

    async def _usable(self) -> None:
        if self.storage is None:
            return
        if self.storage.due():
            await self.check_storage()
        if self.storage_fault is not None:
            raise StorageFault(self.storage_fault)

    async def _fault(self, exc: DBAPIError) -> Exception:
        """The exception a driver error becomes: a storage fault is a 503 (and, on SQLite,
        recorded until a write succeeds again); anything else stays what it was."""
        if self.storage is None:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                return StorageFault(f"the database is unreachable: {exc.orig}")
            return exc
        reason = driver_fault(exc)
        if reason is None:
            return exc
        self.storage.driver_failed(reason)
        await self.check_storage()
        return StorageFault(self.storage_fault or reason)

    async def check_storage(self) -> str | None:
        """Re-check the SQLite file (deleted, replaced, unwritable, full) and, after a driver
        error, whether a write commits again; returns the fault, None when there is none."""
        if self.storage is None:
            return None
        fault, renew = self.storage.check(self._probe_write)
        if renew:
            if fault is None:
                self.storage.release_held()
            await self.engine.dispose()  # while a fault lasts, the pool's are held, unclosed
        return fault

    def _probe_write(self) -> None:
        """A no-op update committed on a connection of its own: raises if writes fail."""
        assert self.storage is not None
        path = quote(str(self.storage.files.path))
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE alembic_version SET version_num = version_num")
            connection.execute("COMMIT")
        finally:
            connection.close()

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
        if self.storage is not None:
            if await self.check_storage():
                raise StorageFault(self.storage_fault or "")
            if self.storage.files.identity() is None:
                raise ConfigError(
                    f"the database file {self.storage.files.path} does not exist: "
                    "run `alembic upgrade head` from the project root"
                )
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def migration_state(self) -> MigrationState:
        if self.storage is not None:
            if await self.check_storage():
                raise StorageFault(self.storage_fault or "")
            if self.storage.files.identity() is None:
                return MigrationState(None, head_revision())  # Alembic creates it, not us
        async with self.engine.connect() as conn:
            current = await conn.run_sync(_current_revision)
        return MigrationState(current, head_revision())

    async def dispose(self) -> None:
        await self.engine.dispose()  # during a storage fault, its connections stay unclosed


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
        # During a storage fault a transaction is left as it is (no SQLite call may be
        # made); its connection is held unclosed and closed when the fault clears.
        if self.storage is None or self.storage.fault is None:
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
    # Database pages are read and written, never memory-mapped: a mapped page whose file
    # fails (immutable, gone, I/O error) is a SIGBUS that kills the process, where a read
    # or write is an error the service reports. (WAL's -shm index is mapped whatever this
    # says: see ``storage``.)
    cursor.execute("PRAGMA mmap_size=0")
    cursor.close()


def _tune_sqlite(engine: AsyncEngine) -> None:
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
