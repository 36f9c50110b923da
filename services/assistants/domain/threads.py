"""Threads: create (with initial messages), read, modify, delete with everything in them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import not_found
from ..ids import new_id
from ..schemas.common import dump_optional
from ..schemas.threads import ThreadCreate, ThreadModify
from ..tables import Message, Run, RunStep, Thread
from .messages import add_message


def thread_object(row: Thread) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread",
        "created_at": row.created_at,
        "tool_resources": row.tool_resources,
        "metadata": row.metadata_ or {},
    }


async def create_thread(session: AsyncSession, body: ThreadCreate | None) -> Thread:
    body = body or ThreadCreate()
    row = Thread(
        id=new_id("thread_"),
        created_at=now(),
        tool_resources=dump_optional(body.tool_resources) or {},
        metadata_=body.metadata or {},
    )
    session.add(row)
    await session.flush()
    for message in body.messages or []:
        await add_message(session, row.id, message)
    return row


async def get_thread(session: AsyncSession, thread_id: str) -> Thread:
    row = await session.scalar(select(Thread).where(Thread.id == thread_id))
    if row is None:
        raise not_found("thread", thread_id, "thread_id")
    return row


# Core, from the table's columns: no ORM layers for a look-up on the message paths.
_threads = Thread.__table__.c
_THREAD_EXISTS = select(_threads.seq).where(_threads.id == bindparam("thread_id"))


async def require_thread(session: AsyncSession, thread_id: str) -> None:
    """404 unless the thread exists; cheaper than loading it."""
    if await session.scalar(_THREAD_EXISTS, {"thread_id": thread_id}) is None:
        raise not_found("thread", thread_id, "thread_id")


async def modify_thread(session: AsyncSession, thread_id: str, body: ThreadModify) -> Thread:
    row = await get_thread(session, thread_id)
    if "tool_resources" in body.model_fields_set:
        row.tool_resources = dump_optional(body.tool_resources) or {}
    if "metadata" in body.model_fields_set:
        row.metadata_ = body.metadata or {}
    await session.flush()
    return row


async def delete_thread(session: AsyncSession, thread_id: str) -> None:
    await require_thread(session, thread_id)
    # Explicit deletes, children first, so the cascade does not depend on the dialect's
    # foreign-key enforcement.
    run_ids = select(Run.id).where(Run.thread_id == thread_id)
    await session.execute(delete(RunStep).where(RunStep.run_id.in_(run_ids)))
    await session.execute(delete(Run).where(Run.thread_id == thread_id))
    await session.execute(delete(Message).where(Message.thread_id == thread_id))
    await session.execute(delete(Thread).where(Thread.id == thread_id))
