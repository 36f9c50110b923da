"""/v1/threads/{thread_id}/messages routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...db import Database
from ...domain import messages as domain
from ...domain.threads import require_thread
from ...errors import InvalidRequest
from ...pagination import PageParams
from ...schemas.common import Deleted, ListResponse
from ...schemas.threads import MessageCreate, MessageModify, MessageObject
from ..deps import DatabaseDep, PageDep
from ..json_route import JSONRoute
from ..responses import json_response

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"], route_class=JSONRoute)


# The two busiest operations, as plain functions the routes below call.


async def create(db: Database, thread_id: str, body: MessageCreate) -> dict[str, Any]:
    """404 for an unknown thread, 400 while a run is active on it, else the new message."""
    async with db.write() as session:
        await domain.ensure_can_add_message(session, thread_id)
        return await domain.add_message(session, thread_id, body)


async def page(
    db: Database, thread_id: str, params: PageParams, run_id: str | None
) -> dict[str, Any]:
    """A page of the thread's messages; 404 for an unknown thread."""
    async with db.read() as session:
        try:
            listed = await domain.list_messages(session, thread_id, params, run_id)
        except InvalidRequest:
            await require_thread(session, thread_id)  # an unknown thread is a 404 first
            raise
        if not listed["data"]:
            # Messages exist only in threads that exist: the check costs a query only when
            # the page is empty.
            await require_thread(session, thread_id)
    return listed


@router.post("", response_model=MessageObject)
async def create_message(thread_id: str, body: MessageCreate, db: DatabaseDep) -> Any:
    return json_response(await create(db, thread_id, body))


@router.get("", response_model=ListResponse[MessageObject])
async def list_messages(
    thread_id: str,
    db: DatabaseDep,
    params: PageDep,
    run_id: Annotated[str | None, Query()] = None,
) -> Any:
    return json_response(await page(db, thread_id, params, run_id))


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
