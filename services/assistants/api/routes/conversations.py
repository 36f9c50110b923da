"""/v1/conversations and their items."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ...responses import store
from ...responses.objects import conversation_object, shown_item
from ...responses.schemas import ConversationCreate, ConversationItemsCreate, ConversationUpdate
from ...responses.shapes import ConversationObject, ItemList, ItemObject
from ...schemas.common import Deleted
from ..deps import DatabaseDep, PageDep
from ..json_route import JSONRoute
from ..responses import json_response

router = APIRouter(prefix="/conversations", tags=["conversations"], route_class=JSONRoute)

Include = Annotated[list[str] | None, Query(alias="include[]")]


@router.post("", response_model=ConversationObject)
async def create_conversation(body: ConversationCreate, db: DatabaseDep) -> Any:
    async with db.write() as session:
        row = await store.create_conversation(session, body.items, body.metadata)
    return json_response(conversation_object(row))


@router.get("/{conversation_id}", response_model=ConversationObject)
async def retrieve_conversation(conversation_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        row = await store.get_conversation(session, conversation_id)
    return json_response(conversation_object(row))


@router.post("/{conversation_id}", response_model=ConversationObject)
async def update_conversation(
    conversation_id: str, body: ConversationUpdate, db: DatabaseDep
) -> Any:
    async with db.write() as session:
        row = await store.get_conversation(session, conversation_id)
        row.metadata_ = body.metadata
    return json_response(conversation_object(row))


@router.delete("/{conversation_id}", response_model=Deleted)
async def delete_conversation(conversation_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        await store.delete_conversation(session, conversation_id)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


@router.post("/{conversation_id}/items", response_model=ItemList)
async def create_items(
    conversation_id: str, body: ConversationItemsCreate, db: DatabaseDep, include: Include = None
) -> Any:
    async with db.write() as session:
        items = await store.add_items(session, conversation_id, body.items)
    return json_response(
        {
            "object": "list",
            "data": items,
            "first_id": items[0]["id"],
            "last_id": items[-1]["id"],
            "has_more": False,
        }
    )


@router.get("/{conversation_id}/items", response_model=ItemList)
async def list_items(
    conversation_id: str, db: DatabaseDep, page: PageDep, include: Include = None
) -> Any:
    async with db.read() as session:
        return json_response(
            await store.list_conversation_items(session, conversation_id, page, include or [])
        )


@router.get("/{conversation_id}/items/{item_id}", response_model=ItemObject)
async def retrieve_item(
    conversation_id: str, item_id: str, db: DatabaseDep, include: Include = None
) -> Any:
    async with db.read() as session:
        row = await store.get_conversation_item(session, conversation_id, item_id)
    return json_response(shown_item(row.body, include or []))


@router.delete("/{conversation_id}/items/{item_id}", response_model=ConversationObject)
async def delete_item(conversation_id: str, item_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        row = await store.remove_conversation_item(session, conversation_id, item_id)
    return json_response(conversation_object(row))


__all__ = ["router"]
