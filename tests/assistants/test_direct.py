"""Core statements run directly on the driver: the same SQL, parameters and values as
SQLAlchemy's execution layer gives, on a real migrated SQLite file and PostgreSQL database."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError

from services.assistants.config import resolve_database_url
from services.assistants.db import Database
from services.assistants.direct import CACHE_LIMIT, DirectPostgres, DirectSQLite
from services.assistants.domain.messages import ensure_can_add_message
from services.assistants.errors import InvalidRequest, NotFound
from services.assistants.tables import Message, Run, Thread
from tests.support.databases import fresh_postgres
from tests.support.processes import migrate

messages, threads = Message.__table__, Thread.__table__


def _message(message_id: str, thread_id: str, **values: Any) -> dict[str, Any]:
    """Every column of a message row but ``seq`` (a direct INSERT must give them all)."""
    return {
        "id": message_id,
        "thread_id": thread_id,
        "created_at": 1_700_000_000,
        "role": "user",
        "content": [{"type": "text", "text": {"value": "hi", "annotations": []}}],
        "status": "completed",
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "completed_at": 1_700_000_000,
        "incomplete_at": None,
        "incomplete_details": None,
        "metadata": {},
        **values,
    }


@pytest.fixture()
def database(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path}/direct.db"
    migrate(url)
    return Database(make_url(url))


def test_values_round_trip_between_the_direct_path_and_the_orm(database: Database) -> None:
    tricky = {
        "content": [{"type": "text", "text": {"value": 'é ✓ \u2028 "q"', "annotations": []}}],
        "attachments": [{"file_id": "file_1", "tools": [{"n": 2**63, "x": 1.5, "e": []}]}],
        "metadata": {"k": "v"},
        "incomplete_details": None,
    }

    async def scenario() -> None:
        async with database.write() as session:
            session.add(Thread(id="thread_a", created_at=1, metadata_={}, tool_resources={}))
        async with database.write_core() as conn:
            assert isinstance(conn, DirectSQLite)
            await conn.execute(insert(messages), _message("msg_direct", "thread_a", **tricky))
        async with database.write() as session:
            orm = {**_message("msg_orm", "thread_a", **tricky)}
            orm["metadata_"] = orm.pop("metadata")
            session.add(Message(**orm))
        # Each path reads back what either wrote, with the same Python values.
        async with database.read() as session:
            by_orm = {m.id: m for m in (await session.scalars(select(Message))).all()}
        columns = select(messages).where(messages.c.thread_id == bindparam("thread"))
        async with database.read_core() as conn:
            rows = await conn.execute(columns.order_by(messages.c.seq), {"thread": "thread_a"})
            names = [c.name for c in messages.columns]
            records = [dict(zip(names, row, strict=True)) for row in rows.all()]
        by_direct = {record["id"]: record for record in records}
        assert set(by_orm) == set(by_direct) == {"msg_direct", "msg_orm"}
        for message_id, record in by_direct.items():
            stored = by_orm[message_id]
            assert record["content"] == stored.content == tricky["content"]
            assert record["attachments"] == stored.attachments == tricky["attachments"]
            assert record["metadata"] == stored.metadata_ == {"k": "v"}
            assert record["incomplete_details"] is stored.incomplete_details is None
        # What no response could carry is refused before it is stored.
        unservable = {"attachments": [{"file_id": "f", "tools": [{"n": 2**70}]}]}
        with pytest.raises(TypeError, match="64-bit"):
            async with database.write_core() as conn:
                await conn.execute(insert(messages), _message("msg_big", "thread_a", **unservable))
        async with database.read_core() as conn:
            assert (
                await conn.scalar(select(messages.c.id).where(messages.c.id == "msg_big")) is None
            )
        await database.dispose()

    asyncio.run(scenario())


def test_expanded_in_lists_limits_and_missing_values(database: Database) -> None:
    async def scenario() -> None:
        async with database.write() as session:
            session.add(Thread(id="thread_b", created_at=1, metadata_={}, tool_resources={}))
        async with database.write_core() as conn:
            # The IN list of active statuses is expanded once, at compile time.
            await ensure_can_add_message(conn, "thread_b")
            with pytest.raises(NotFound):
                await ensure_can_add_message(conn, "thread_missing")
        async with database.write() as session:
            session.add(
                Run(
                    id="run_b",
                    thread_id="thread_b",
                    assistant_id="asst",
                    created_at=1,
                    status="requires_action",
                    model="m",
                    metadata_={},
                )
            )
        async with database.read_core() as conn:
            with pytest.raises(InvalidRequest, match="run run_b is active"):
                await ensure_can_add_message(conn, "thread_b")
            with pytest.raises(KeyError, match="'thread_id'"):
                await conn.execute(
                    select(threads.c.seq).where(threads.c.id == bindparam("thread_id"))
                )
            assert await conn.scalar(select(threads.c.id).limit(1)) == "thread_b"
        await database.dispose()

    asyncio.run(scenario())


def test_an_insert_must_name_every_column(database: Database) -> None:
    async def scenario() -> None:
        async with database.write_core() as conn:
            with pytest.raises(ValueError, match=r"every column.*'role'"):
                row = _message("msg_x", "thread_x")
                del row["role"]
                await conn.execute(insert(messages), row)
        await database.dispose()

    asyncio.run(scenario())


def test_failed_writes_roll_back_and_broken_readers_are_dropped(database: Database) -> None:
    async def scenario() -> None:
        async with database.write() as session:
            session.add(Thread(id="thread_c", created_at=1, metadata_={}, tool_resources={}))
        with pytest.raises(RuntimeError):
            async with database.write_core() as conn:
                await conn.execute(insert(messages), _message("msg_lost", "thread_c"))
                raise RuntimeError("after the insert")
        count = select(messages.c.id).where(messages.c.thread_id == "thread_c")
        async with database.read_core() as reader:
            assert (await reader.execute(count)).all() == []
        # The writer connection is usable again, and a commit is visible to readers.
        async with database.write_core() as conn:
            await conn.execute(insert(messages), _message("msg_kept", "thread_c"))
        async with database.read_core() as again:
            assert again is reader  # readers are reused
            assert [r[0] for r in (await again.execute(count)).all()] == ["msg_kept"]
        # A writer that cannot even roll back is replaced.
        with pytest.raises(sqlite3.ProgrammingError):
            async with database.write_core() as lost:
                lost.connection.close()
                raise RuntimeError("after the connection broke")
        async with database.write_core() as replaced:
            assert replaced is not lost
            await replaced.execute(insert(messages), _message("msg_after", "thread_c"))
        # A read that fails (a 404, say) ends its transaction; the connection is reused.
        with pytest.raises(RuntimeError):
            async with database.read_core() as failed:
                raise RuntimeError("mid-read")
        assert isinstance(failed, DirectSQLite) and not failed.connection.in_transaction
        async with database.read_core() as reused:
            assert reused is failed
        # One that cannot even roll back is closed, never handed out again.
        with pytest.raises(sqlite3.ProgrammingError):
            async with database.read_core() as closed:
                closed.connection.close()
        async with database.read_core() as fresh:
            assert fresh is not closed
        await database.dispose()

    asyncio.run(scenario())


def test_statement_cache_is_bounded(database: Database) -> None:
    async def scenario() -> None:
        async with database.read_core() as conn:
            assert isinstance(conn, DirectSQLite)
            for n in range(CACHE_LIMIT + 5):  # statements built per call never hit again
                assert await conn.scalar(select(threads.c.id).where(threads.c.seq == n)) is None
            assert len(conn.statements._compiled) <= CACHE_LIMIT
        await database.dispose()

    asyncio.run(scenario())


def test_postgres_runs_the_same_statements_directly(tmp_path: Path) -> None:
    async def scenario(database: Database) -> None:
        async with database.write() as session:
            session.add(Thread(id="thread_p", created_at=1, metadata_={}, tool_resources={}))
        tricky = {"content": [{"type": "text", "text": {"value": "é ✓", "annotations": []}}]}
        async with database.write_core() as conn:
            assert isinstance(conn, DirectPostgres)
            await conn.execute(insert(messages), _message("msg_kept", "thread_p", **tricky))
            await ensure_can_add_message(conn, "thread_p")  # the IN list, by name
        with pytest.raises(RuntimeError):
            async with database.write_core() as conn:
                await conn.execute(insert(messages), _message("msg_lost", "thread_p"))
                raise RuntimeError("after the insert")
        # The driver's errors come out as SQLAlchemy's: a NUL is a DataError (a 400).
        with pytest.raises(DataError):
            async with database.read_core() as conn:
                await conn.scalar(select(threads.c.seq).where(threads.c.id == "thread\x00p"))
        async with database.read() as session:
            stored = (await session.scalars(select(Message))).all()
        assert [(m.id, m.content, m.metadata_) for m in stored] == [
            ("msg_kept", tricky["content"], {})
        ]
        async with database.read_core() as conn:
            rows = (await conn.execute(select(messages.c.id, messages.c.content))).all()
        assert [tuple(row) for row in rows] == [("msg_kept", tricky["content"])]
        await database.dispose()

    with fresh_postgres() as url:
        migrate(url)
        asyncio.run(scenario(Database(resolve_database_url(url))))
