"""Responses, conversations and their items in the database: what the routes and the
executor read and write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import InvalidRequest, NotFound, not_found
from ..ids import new_id
from ..pagination import PageParams, fetch_page
from .items import input_items
from .objects import shown_item
from .tables import Conversation, ResponseItem, ResponseRow

__all__ = [
    "add_items",
    "cancel_response",
    "chain_history",
    "conversation_history",
    "create_conversation",
    "delete_conversation",
    "delete_response",
    "get_conversation",
    "get_conversation_item",
    "get_response",
    "item_rows",
    "list_conversation_items",
    "list_input_items",
    "own_inputs",
    "remove_conversation_item",
]

ACTIVE = ("queued", "in_progress")


def item_rows(
    items: list[dict[str, Any]],
    *,
    kind: str,
    response_id: str | None = None,
    conversation_id: str | None = None,
) -> list[ResponseItem]:
    stamp = now()
    return [
        ResponseItem(
            id=item["id"],
            created_at=stamp,
            metadata_={},
            response_id=response_id,
            conversation_id=conversation_id,
            kind=kind,
            type=item["type"],
            body=item,
        )
        for item in items
    ]


async def get_response(session: AsyncSession, response_id: str) -> ResponseRow:
    row = await session.scalar(select(ResponseRow).where(ResponseRow.id == response_id))
    if row is None:
        raise not_found("response", response_id)
    return row


async def chain_history(session: AsyncSession, previous_id: str) -> list[dict[str, Any]]:
    """Every item of the responses chained before (and including) ``previous_id``, oldest
    first: each one's input items, then its output."""
    chain: list[Any] = []
    current: str | None = previous_id
    seen: set[str] = set()
    while current and current not in seen:
        seen.add(current)
        row = (
            await session.execute(
                select(
                    ResponseRow.id,
                    ResponseRow.previous_response_id,
                    ResponseRow.output,
                    ResponseRow.status,
                ).where(ResponseRow.id == current)
            )
        ).first()
        if row is None:
            if not chain:
                raise NotFound(
                    f"Previous response with id '{previous_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            break  # an older link was deleted: the chain starts after it
        if not chain and row.status in ACTIVE:
            raise InvalidRequest(
                f"Previous response '{previous_id}' is still {row.status}; wait until it ends.",
                param="previous_response_id",
            )
        chain.append(row)
        current = row.previous_response_id
    ids = [r.id for r in chain]
    inputs: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    rows = await session.execute(
        select(ResponseItem.response_id, ResponseItem.body)
        .where(ResponseItem.response_id.in_(ids), ResponseItem.kind == "input")
        .order_by(ResponseItem.seq)
    )
    for response_id, body in rows:
        inputs[response_id].append(body)
    history: list[dict[str, Any]] = []
    for r in reversed(chain):
        history += inputs[r.id]
        history += r.output or []
    return history


async def get_conversation(session: AsyncSession, conversation_id: str) -> Conversation:
    row = await session.scalar(select(Conversation).where(Conversation.id == conversation_id))
    if row is None:
        raise not_found("conversation", conversation_id)
    return row


async def conversation_history(session: AsyncSession, conversation_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(ResponseItem.body)
        .where(ResponseItem.conversation_id == conversation_id)
        .order_by(ResponseItem.seq)
    )
    return list(rows.all())


async def own_inputs(session: AsyncSession, response_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(ResponseItem.body)
        .where(ResponseItem.response_id == response_id, ResponseItem.kind == "input")
        .order_by(ResponseItem.seq)
    )
    return list(rows.all())


async def delete_response(session: AsyncSession, response_id: str) -> None:
    row = await get_response(session, response_id)
    # Items a conversation holds stay in it; the rest go with the response.
    await session.execute(
        delete(ResponseItem).where(
            ResponseItem.response_id == response_id, ResponseItem.conversation_id.is_(None)
        )
    )
    await session.execute(
        update(ResponseItem).where(ResponseItem.response_id == response_id).values(response_id=None)
    )
    await session.delete(row)


async def list_input_items(
    session: AsyncSession, response_id: str, page: PageParams, include: Sequence[str] = ()
) -> dict[str, Any]:
    await get_response(session, response_id)
    return await fetch_page(
        session,
        ResponseItem,
        page,
        {"response_id": response_id, "kind": "input"},
        lambda row: shown_item(row.body, include),
    )


# -- conversations ----------------------------------------------------------------------


async def create_conversation(
    session: AsyncSession, items: list[dict[str, Any]] | None, metadata: dict[str, str] | None
) -> Conversation:
    row = Conversation(id=new_id("conv_"), created_at=now(), metadata_=metadata or {})
    session.add(row)
    initial = input_items(items or [], "items")
    session.add_all(item_rows(initial, kind="input", conversation_id=row.id))
    return row


async def delete_conversation(session: AsyncSession, conversation_id: str) -> None:
    row = await get_conversation(session, conversation_id)
    await session.execute(
        delete(ResponseItem).where(
            ResponseItem.conversation_id == conversation_id, ResponseItem.response_id.is_(None)
        )
    )
    await session.execute(
        update(ResponseItem)
        .where(ResponseItem.conversation_id == conversation_id)
        .values(conversation_id=None)
    )
    await session.delete(row)


async def add_items(
    session: AsyncSession, conversation_id: str, raw: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    await get_conversation(session, conversation_id)
    items = input_items(raw, "items")
    session.add_all(item_rows(items, kind="input", conversation_id=conversation_id))
    return items


async def list_conversation_items(
    session: AsyncSession, conversation_id: str, page: PageParams, include: Sequence[str] = ()
) -> dict[str, Any]:
    await get_conversation(session, conversation_id)
    return await fetch_page(
        session,
        ResponseItem,
        page,
        {"conversation_id": conversation_id},
        lambda row: shown_item(row.body, include),
    )


async def get_conversation_item(
    session: AsyncSession, conversation_id: str, item_id: str
) -> ResponseItem:
    await get_conversation(session, conversation_id)
    row = await session.scalar(
        select(ResponseItem).where(
            ResponseItem.id == item_id, ResponseItem.conversation_id == conversation_id
        )
    )
    if row is None:
        raise not_found("item", item_id)
    return row


async def remove_conversation_item(
    session: AsyncSession, conversation_id: str, item_id: str
) -> Conversation:
    row = await get_conversation_item(session, conversation_id, item_id)
    if row.response_id is None:
        await session.delete(row)
    else:
        row.conversation_id = None  # still one of its response's items
    return await get_conversation(session, conversation_id)


async def cancel_response(session: AsyncSession, response_id: str) -> tuple[ResponseRow, bool]:
    """A background response -> cancelled; returns it and whether it was still active (its
    executor, here or on another replica, must then stop)."""
    row = await session.scalar(
        select(ResponseRow).where(ResponseRow.id == response_id).with_for_update()
    )
    if row is None:
        raise not_found("response", response_id)
    if not row.background:
        raise InvalidRequest(
            "Only responses created with background=true can be cancelled.",
            param="response_id",
        )
    if row.status == "cancelled":
        return row, False
    if row.status not in ACTIVE:
        raise InvalidRequest(
            f"Cannot cancel a response that is already {row.status}.", param="response_id"
        )
    row.status = "cancelled"
    return row, True
