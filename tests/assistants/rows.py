"""Direct database access for tests: rows the API cannot create yet, and counts behind it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from services.assistants.config import resolve_database_url
from services.assistants.ids import new_id
from services.assistants.tables import Base, Message, Run, RunStep


@contextmanager
def engine_for(database_url: str) -> Iterator[Engine]:
    engine = create_engine(resolve_database_url(database_url))
    try:
        yield engine
    finally:
        engine.dispose()


def insert_run(engine: Engine, thread_id: str, assistant_id: str, *, status: str) -> str:
    """A run with one message-creation step and one assistant message, written as the
    executor would; returns the run id."""
    run_id, created = new_id("run_"), 1_700_000_000
    with Session(engine) as session, session.begin():
        session.add(
            Run(
                id=run_id,
                created_at=created,
                thread_id=thread_id,
                assistant_id=assistant_id,
                status=status,
                model="m",
            )
        )
        message_id = new_id("msg_")
        session.add(
            Message(
                id=message_id,
                created_at=created,
                thread_id=thread_id,
                role="assistant",
                content=[{"type": "text", "text": {"value": "hi", "annotations": []}}],
                assistant_id=assistant_id,
                run_id=run_id,
                completed_at=created,
            )
        )
        session.flush()
        session.add(
            RunStep(
                id=new_id("step_"),
                created_at=created,
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=assistant_id,
                type="message_creation",
                status="completed",
                step_details={
                    "type": "message_creation",
                    "message_creation": {"message_id": message_id},
                },
            )
        )
    return run_id


def count(engine: Engine, table: type[Base], **where: Any) -> int:
    conditions = [getattr(table, key) == value for key, value in where.items()]
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(table).where(*conditions)) or 0
