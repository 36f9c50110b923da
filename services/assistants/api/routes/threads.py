"""/v1/threads routes (thread objects; messages and runs have their own modules)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from ...domain import threads as domain
from ...schemas.common import Deleted
from ...schemas.threads import ThreadCreate, ThreadModify, ThreadObject
from ..deps import DatabaseDep
from ..json_route import JSONRoute

router = APIRouter(prefix="/threads", tags=["threads"], route_class=JSONRoute)


@router.post("", response_model=ThreadObject)
async def create_thread(db: DatabaseDep, body: ThreadCreate | None = Body(None)) -> Any:
    async with db.write() as session:
        return domain.thread_object(await domain.create_thread(session, body))


@router.get("/{thread_id}", response_model=ThreadObject)
async def retrieve_thread(thread_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        return domain.thread_object(await domain.get_thread(session, thread_id))


@router.post("/{thread_id}", response_model=ThreadObject)
async def modify_thread(thread_id: str, body: ThreadModify, db: DatabaseDep) -> Any:
    async with db.write() as session:
        return domain.thread_object(await domain.modify_thread(session, thread_id, body))


@router.delete("/{thread_id}", response_model=Deleted)
async def delete_thread(thread_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        await domain.delete_thread(session, thread_id)
    return Deleted(id=thread_id, object="thread.deleted")
