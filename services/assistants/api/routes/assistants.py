"""/v1/assistants routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ...domain import assistants as domain
from ...schemas.assistants import AssistantCreate, AssistantModify, AssistantObject
from ...schemas.common import Deleted, ListResponse
from ..deps import DatabaseDep, PageDep
from ..json_route import JSONRoute

router = APIRouter(prefix="/assistants", tags=["assistants"], route_class=JSONRoute)


@router.post("", response_model=AssistantObject)
async def create_assistant(body: AssistantCreate, db: DatabaseDep) -> Any:
    async with db.write() as session:
        return domain.assistant_object(await domain.create_assistant(session, body))


@router.get("", response_model=ListResponse[AssistantObject])
async def list_assistants(db: DatabaseDep, page: PageDep) -> Any:
    async with db.read() as session:
        return await domain.list_assistants(session, page)


@router.get("/{assistant_id}", response_model=AssistantObject)
async def retrieve_assistant(assistant_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        return domain.assistant_object(await domain.get_assistant(session, assistant_id))


@router.post("/{assistant_id}", response_model=AssistantObject)
async def modify_assistant(assistant_id: str, body: AssistantModify, db: DatabaseDep) -> Any:
    async with db.write() as session:
        row = await domain.modify_assistant(session, assistant_id, body)
        return domain.assistant_object(row)


@router.delete("/{assistant_id}", response_model=Deleted)
async def delete_assistant(assistant_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        await domain.delete_assistant(session, assistant_id)
    return Deleted(id=assistant_id, object="assistant.deleted")
