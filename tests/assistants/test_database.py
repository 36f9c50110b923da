"""The Database layer on SQLite: one writer at a time in order, and a nested write refused."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.assistants.db import Database


def test_writers_take_turns_and_nesting_fails(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        sqlite3.connect(tmp_path / "a.db").close()  # the service never creates the file
        db = Database(make_url(f"sqlite:///{tmp_path}/a.db"))
        async with db.write() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        order: list[int] = []

        async def writer(n: int) -> None:
            async with db.write() as session:
                order.append(n)
                await asyncio.sleep(0.002)  # yield while holding the write lock
                await session.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})

        await asyncio.gather(*(writer(n) for n in range(20)))
        async with db.write():
            with pytest.raises(RuntimeError, match="already open"):
                async with db.write():
                    pass
        async with db.read() as session:
            stored = list((await session.scalars(text("SELECT n FROM t ORDER BY rowid"))).all())
        assert await db.ping() >= 0
        await db.dispose()
        assert stored == order
        return stored

    assert sorted(asyncio.run(scenario())) == list(range(20))
