"""Messages: create (refused while a run is active), read, modify, delete, list."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import InvalidRequest, not_found
from ..ids import new_id
from ..pagination import PageParams, fetch_page
from ..schemas.threads import MessageCreate, MessageModify, TextPart
from ..tables import Message, Run, Thread

ACTIVE_RUN_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")


def message_object(row: Message) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "thread.message",
        "created_at": row.created_at,
        "thread_id": row.thread_id,
        "status": row.status,
        "incomplete_details": row.incomplete_details,
        "completed_at": row.completed_at,
        "incomplete_at": row.incomplete_at,
        "role": row.role,
        "content": row.content or [],
        "assistant_id": row.assistant_id,
        "run_id": row.run_id,
        "attachments": row.attachments,
        "metadata": row.metadata_ or {},
    }


def text_content(value: str) -> dict[str, Any]:
    return {"type": "text", "text": {"value": value, "annotations": []}}


def stored_content(content: str | list[Any]) -> list[dict[str, Any]]:
    """Request content (a string or parts) as OpenAI returns it: text parts gain annotations."""
    if isinstance(content, str):
        return [text_content(content)]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append(text_content(part.text))
        else:
            parts.append(part.model_dump(mode="json", exclude_none=True))
    return parts


async def active_run_id(session: AsyncSession, thread_id: str) -> str | None:
    return await session.scalar(
        select(Run.id).where(Run.thread_id == thread_id, Run.status.in_(ACTIVE_RUN_STATUSES))
    )


async def ensure_no_active_run(session: AsyncSession, thread_id: str, what: str) -> None:
    run_id = await active_run_id(session, thread_id)
    if run_id is not None:
        raise InvalidRequest(f"Can't add {what} to {thread_id} while a run {run_id} is active.")


# Built once, from the tables' columns: the create path runs it on every message; a
# prebuilt Core statement skips construction and the ORM's compile and loading layers.
_threads, _runs = Thread.__table__.c, Run.__table__.c
_THREAD_AND_ACTIVE_RUN = select(
    _threads.seq,
    select(_runs.id)
    .where(_runs.thread_id == _threads.id, _runs.status.in_(ACTIVE_RUN_STATUSES))
    .limit(1)
    .scalar_subquery(),
).where(_threads.id == bindparam("thread_id"))


async def ensure_can_add_message(session: AsyncSession, thread_id: str) -> None:
    """404 for an unknown thread, 400 while a run is active on it: both in one query."""
    row = (await session.execute(_THREAD_AND_ACTIVE_RUN, {"thread_id": thread_id})).first()
    if row is None:
        raise not_found("thread", thread_id, "thread_id")
    if row[1] is not None:
        raise InvalidRequest(f"Can't add messages to {thread_id} while a run {row[1]} is active.")


_INSERT_MESSAGE = insert(Message.__table__)
# Attribute name -> column name (the attribute ``metadata_`` is the column ``metadata``).
_COLUMN_OF = {prop.key: prop.columns[0].name for prop in sa_inspect(Message).column_attrs}


async def add_message(
    session: AsyncSession,
    thread_id: str,
    body: MessageCreate,
    *,
    run_id: str | None = None,
    assistant_id: str | None = None,
) -> dict[str, Any]:
    """Insert a completed message; callers check the thread exists and no run is active.

    One Core INSERT rather than the unit of work, which costs more than the insert on this,
    the busiest write path. Returns the message object as the API shows it (nothing is
    left in the session; to change the message, load it).
    """
    created = now()
    values: dict[str, Any] = {
        "id": new_id("msg_"),
        "thread_id": thread_id,
        "created_at": created,
        "role": body.role,
        "content": stored_content(body.content),
        "status": "completed",
        "completed_at": created,
        "incomplete_at": None,
        "incomplete_details": None,
        "assistant_id": assistant_id,
        "run_id": run_id,
        "attachments": (
            [a.model_dump(mode="json", exclude_none=True) for a in body.attachments]
            if body.attachments
            else []
        ),
        "metadata_": body.metadata or {},
    }
    await session.flush()  # rows still pending in the session (its thread) go in first
    await session.execute(_INSERT_MESSAGE, {_COLUMN_OF[key]: v for key, v in values.items()})
    return message_object(SimpleNamespace(**values))  # type: ignore[arg-type]


async def get_message(session: AsyncSession, thread_id: str, message_id: str) -> Message:
    row = await session.scalar(
        select(Message).where(Message.id == message_id, Message.thread_id == thread_id)
    )
    if row is None:
        raise not_found("message", message_id, "message_id")
    return row


async def modify_message(
    session: AsyncSession, thread_id: str, message_id: str, body: MessageModify
) -> Message:
    row = await get_message(session, thread_id, message_id)
    if "metadata" in body.model_fields_set:
        row.metadata_ = body.metadata or {}
    await session.flush()
    return row


async def delete_message(session: AsyncSession, thread_id: str, message_id: str) -> None:
    result = await session.execute(
        delete(Message).where(Message.id == message_id, Message.thread_id == thread_id)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise not_found("message", message_id, "message_id")


async def list_messages(
    session: AsyncSession,
    thread_id: str,
    params: PageParams,
    run_id: str | None = None,
) -> dict[str, Any]:
    scope = {"thread_id": thread_id}
    if run_id is not None:
        scope["run_id"] = run_id
    return await fetch_page(session, Message, params, scope, message_object)
