"""Database engine and sessions: async SQLAlchemy over SQLite (WAL) or PostgreSQL (psycopg)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from .config import PROJECT_ROOT, ConfigError

__all__ = ["Database", "MigrationState", "alembic_config", "head_revision"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


def alembic_config(url: URL | None = None) -> AlembicConfig:
    """The project's Alembic configuration, optionally pointed at ``url``."""
    config = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url is not None:
        config.attributes["database_url"] = url
    return config


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
    """One engine per process; ``read()`` and ``write()`` hand out sessions."""

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
            async_url = url.set(drivername="sqlite+aiosqlite")
        else:
            async_url = url.set(drivername="postgresql+psycopg")
        self.engine: AsyncEngine = create_async_engine(
            async_url, pool_size=pool_size, max_overflow=10, pool_pre_ping=not self.is_sqlite
        )
        if self.is_sqlite:
            _tune_sqlite(self.engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

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
        async with self.sessions() as session:
            await session.connection(execution_options={"sqlite_immediate": True})
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

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
        await self.engine.dispose()


def _current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below emit BEGIN itself, so writes can say IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # NORMAL is durable across application crashes in WAL mode; only power loss can
        # roll back the last transactions.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
