"""/v1/threads/{thread_id}/messages routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...domain import messages as domain
from ...domain.threads import require_thread
from ...errors import InvalidRequest
from ...schemas.common import Deleted, ListResponse
from ...schemas.threads import MessageCreate, MessageModify, MessageObject
from ..deps import DatabaseDep, PageDep
from ..responses import json_response

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"])


@router.post("", response_model=MessageObject)
async def create_message(thread_id: str, body: MessageCreate, db: DatabaseDep) -> Any:
    async with db.write_core() as conn:
        await domain.ensure_can_add_message(conn, thread_id)
        message = await domain.add_message(conn, thread_id, body)
    return json_response(message)


@router.get("", response_model=ListResponse[MessageObject])
async def list_messages(
    thread_id: str,
    db: DatabaseDep,
    page: PageDep,
    run_id: Annotated[str | None, Query()] = None,
) -> Any:
    async with db.read_core() as conn:
        try:
            listed = await domain.list_messages(conn, thread_id, page, run_id)
        except InvalidRequest:
            await require_thread(conn, thread_id)  # an unknown thread is a 404 first
            raise
        if not listed["data"]:
            # Messages exist only in threads that exist: the check costs a query only when
            # the page is empty.
            await require_thread(conn, thread_id)
    return json_response(listed)


@router.get("/{message_id}", response_model=MessageObject)
async def retrieve_message(thread_id: str, message_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        return domain.message_object(await domain.get_message(session, thread_id, message_id))


@router.post("/{message_id}", response_model=MessageObject)
async def modify_message(
    thread_id: str, message_id: str, body: MessageModify, db: DatabaseDep
) -> Any:
    async with db.write() as session:
        row = await domain.modify_message(session, thread_id, message_id, body)
        return domain.message_object(row)


@router.delete("/{message_id}", response_model=Deleted)
async def delete_message(thread_id: str, message_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        await domain.delete_message(session, thread_id, message_id)
    return Deleted(id=message_id, object="thread.message.deleted")
