"""Core statements run straight on the driver's connection (sqlite3 or psycopg): compiled
once by SQLAlchemy, then executed without its execution layer, which on the busiest paths
costs ten times what SQLite does (creating a message: ~440 us through AsyncConnection,
~45 us on the connection) and most of a request's CPU time on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Insert
from sqlalchemy.sql.selectable import SelectBase

__all__ = [
    "DirectConnection",
    "DirectPostgres",
    "DirectSQLite",
    "StatementCache",
    "begin_immediate",
]

Processor = Callable[[Any], Any]
# Statements are built once and reused; a cache that outgrows this holds statements built
# per call, which would never hit it again.
CACHE_LIMIT = 512
REQUIRED = object()


class Compiled:
    """A statement's final SQL, how to order and convert its parameters, and how to
    convert its result columns, as SQLAlchemy's compiler and types define them."""

    def __init__(
        self, statement: ClauseElement, cache: StatementCache, columns: tuple[str, ...] | None
    ) -> None:
        dialect = cache.dialect
        compiled = statement.compile(dialect=dialect, column_keys=columns)
        # Required parameters get placeholders; expanding ones (IN lists of constants) are
        # rendered here, once, with the values the statement carries.
        required = {
            name: None
            for name, bind in compiled.binds.items()
            if bind.required or bind.value is None
        }
        state = compiled.construct_expanded_state(required)
        self.sql: str = state.statement
        processors: dict[str, Processor | None] = {
            name: cache.json_dumps
            if isinstance(bind.type, JSON)
            else dialect.type_descriptor(bind.type).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        processors.update(state.processors)  # the expanded parameters'
        # sqlite3 takes parameters by position (qmark), psycopg by name (pyformat).
        self.positional = dialect.positional
        names = state.positiontup if self.positional else list(state.parameters)
        self.parameters: list[tuple[str, Any, Processor | None]] = [
            (name, REQUIRED if name in required else state.parameters[name], processors.get(name))
            for name in names or ()
        ]
        self.columns: list[tuple[int, Processor]] = []
        if isinstance(statement, SelectBase):
            for index, column in enumerate(statement.selected_columns):
                convert = (
                    cache.json_loads
                    if isinstance(column.type, JSON)
                    else dialect.type_descriptor(column.type).result_processor(dialect, None)
                )
                if convert is not None:
                    self.columns.append((index, convert))

    def arguments(self, values: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        arguments = {}
        for name, default, convert in self.parameters:
            value = values.get(name, default)
            if value is REQUIRED:
                raise KeyError(f"a value is required for the parameter {name!r}")
            arguments[name] = convert(value) if convert is not None else value
        return list(arguments.values()) if self.positional else arguments

    def rows(self, fetched: list[Any]) -> list[Any]:
        if not self.columns:
            return fetched
        converted = []
        for row in fetched:
            values = list(row)
            for index, convert in self.columns:
                if values[index] is not None:
                    values[index] = convert(values[index])
            converted.append(tuple(values))
        return converted


class StatementCache:
    """Compiled statements of one database's dialect, shared by its direct connections."""

    def __init__(
        self, dialect: Dialect, json_loads: Processor | None, json_dumps: Processor
    ) -> None:
        self.dialect = dialect
        # JSON values convert straight, where the types' processors take three calls per
        # value (a page of 20 messages decodes 80). psycopg decodes JSON columns itself,
        # with the loader SQLAlchemy gives it: no ``json_loads`` there.
        self.json_loads = json_loads
        self.json_dumps = json_dumps
        self._compiled: dict[tuple[ClauseElement, tuple[str, ...] | None], Compiled] = {}

    def get(self, statement: ClauseElement, parameters: Mapping[str, Any]) -> Compiled:
        # An INSERT is compiled for the columns it is given, which must be all of them:
        # column defaults are the execution layer's work, which this skips.
        columns = tuple(parameters) if isinstance(statement, Insert) else None
        key = (statement, columns)
        compiled = self._compiled.get(key)
        if compiled is None:
            if columns is not None:
                _require_every_column(statement, columns)  # type: ignore[arg-type]
            if len(self._compiled) >= CACHE_LIMIT:
                self._compiled.clear()
            compiled = self._compiled[key] = Compiled(statement, self, columns)
        return compiled


def _require_every_column(statement: Insert, columns: tuple[str, ...]) -> None:
    table = statement.table
    missing = [
        column.key
        for column in table.columns  # type: ignore[attr-defined]
        if column.key not in columns and column is not table.autoincrement_column  # type: ignore[attr-defined]
    ]
    if missing:
        raise ValueError(f"an INSERT run directly must give every column; missing {missing}")


class Rows:
    """A statement's result, shaped like the part of SQLAlchemy's Result callers use."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None


class DirectConnection:
    """A driver connection that runs Core statements with ``execute`` and ``scalar``, as
    AsyncConnection does; the driver's errors come out as SQLAlchemy's (a DataError is a
    client's 400 wherever it is raised)."""

    def __init__(self, statements: StatementCache) -> None:
        self.statements = statements

    async def _run(self, compiled: Compiled, arguments: Any) -> list[Any]:
        raise NotImplementedError

    async def execute(
        self, statement: ClauseElement, parameters: Mapping[str, Any] | None = None
    ) -> Rows:
        parameters = parameters or {}
        compiled = self.statements.get(statement, parameters)
        arguments = compiled.arguments(parameters)
        dbapi = self.statements.dialect.loaded_dbapi
        try:
            fetched = await self._run(compiled, arguments)
        except dbapi.Error as exc:
            raise DBAPIError.instance(compiled.sql, arguments, exc, dbapi.Error) from exc
        return Rows(compiled.rows(fetched))

    async def scalar(
        self, statement: ClauseElement, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        row = (await self.execute(statement, parameters)).first()
        return row[0] if row is not None else None


class DirectPostgres(DirectConnection):
    """A psycopg connection, checked out of SQLAlchemy's pool (which pings, resets and
    replaces it); transactions begin implicitly, as psycopg's do."""

    def __init__(self, connection: Any, statements: StatementCache) -> None:
        super().__init__(statements)
        self.connection = connection

    async def _run(self, compiled: Compiled, arguments: Any) -> list[Any]:
        cursor = await self.connection.execute(compiled.sql, arguments)
        return await cursor.fetchall() if cursor.description is not None else []


class DirectSQLite(DirectConnection):
    """A sqlite3 connection. Its calls never yield to the event loop: on a local WAL file
    they take microseconds (see ``db.InlineSQLiteDialect``)."""

    def __init__(self, connection: sqlite3.Connection, statements: StatementCache) -> None:
        super().__init__(statements)
        self.connection = connection

    async def _run(self, compiled: Compiled, arguments: Any) -> list[Any]:
        return self.connection.execute(compiled.sql, arguments).fetchall()

    def begin(self) -> None:
        self.connection.execute("BEGIN")

    async def begin_immediate(self, timeout: float) -> None:
        await begin_immediate(self.connection, timeout)

    def commit(self) -> None:
        self.connection.execute("COMMIT")

    def rollback(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")

    def close(self) -> None:
        self.connection.close()


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
