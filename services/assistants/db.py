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
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .config import PROJECT_ROOT, ConfigError
from .sqlite_driver import tune_sqlite
from .storage import SQLiteStorage, StorageFault, driver_fault

__all__ = ["Database", "MigrationState", "alembic_config", "head_revision"]


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
            tune_sqlite(self.engine)
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
        except DBAPIError as exc:
            fault = await self._fault(exc)
            if fault is exc:
                raise
            raise fault from exc

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
        except DBAPIError as exc:
            fault = await self._fault(exc)
            if fault is exc:
                raise
            raise fault from exc
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
        # timeout=0: a busy database fails the probe (tried again later) rather than
        # holding up the event loop.
        connection = sqlite3.connect(
            f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=0
        )
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


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()
