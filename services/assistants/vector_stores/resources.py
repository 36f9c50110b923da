"""Vector stores named in tool_resources: the ``vector_stores`` helper that makes a store
from ``file_ids``, checks that named stores exist, and the store a thread gets for files
attached to its messages with ``file_search``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import InvalidRequest, not_found
from ..tables import Thread, VectorStore
from .schemas import ExpiresAfter, VectorStoreCreate
from .store_files import add_files

__all__ = ["attach_to_thread", "file_search_file_ids", "resolve_tool_resources"]

# OpenAI's stores made for a thread's attachments expire a week after their last use.
THREAD_STORE_EXPIRY = ExpiresAfter(anchor="last_active_at", days=7)


async def resolve_tool_resources(
    session: AsyncSession, resources: dict[str, Any] | None
) -> dict[str, Any]:
    """``file_search.vector_stores`` become stores (their ids join ``vector_store_ids``);
    every id named must be a store that exists."""
    from .stores import create_store, expired_error, is_expired

    resources = dict(resources or {})
    search = resources.get("file_search")
    if not search:
        return resources
    search = dict(search)
    ids = list(search.get("vector_store_ids") or [])
    if ids:
        found = {
            row.id: row
            for row in (
                await session.execute(
                    select(VectorStore.id, VectorStore.expires_at).where(VectorStore.id.in_(ids))
                )
            ).all()
        }
        for i, store_id in enumerate(ids):
            param = f"tool_resources.file_search.vector_store_ids[{i}]"
            if store_id not in found:
                raise InvalidRequest(f"No vector store found with id '{store_id}'.", param=param)
            if is_expired(found[store_id]):
                raise expired_error(store_id, param)
    for helper in search.pop("vector_stores", None) or []:
        body = VectorStoreCreate(
            file_ids=list(helper.get("file_ids") or []),
            chunking_strategy=helper.get("chunking_strategy"),
            metadata=helper.get("metadata"),
        )
        ids.append((await create_store(session, body)).id)
    if len(ids) > 1:
        raise InvalidRequest(
            "At most one vector store can be attached for file_search.",
            param="tool_resources.file_search.vector_store_ids",
        )
    search["vector_store_ids"] = ids
    resources["file_search"] = search
    return resources


def file_search_file_ids(attachments: list[Any] | None) -> list[str]:
    """The files of message attachments that name the file_search tool."""
    ids: list[str] = []
    for attachment in attachments or []:
        raw = attachment if isinstance(attachment, dict) else attachment.model_dump()
        tools = raw.get("tools") or []
        if any((t or {}).get("type") == "file_search" for t in tools):
            ids.append(raw["file_id"])
    return ids


async def attach_to_thread(session: AsyncSession, thread_id: str, file_ids: list[str]) -> None:
    """The thread's own store gains ``file_ids`` (made on first use, as OpenAI does);
    400 when that store has expired."""
    from .stores import create_store, expired_error, is_expired

    if not file_ids:
        return
    thread = await session.scalar(select(Thread).where(Thread.id == thread_id))
    if thread is None:
        raise not_found("thread", thread_id, "thread_id")
    resources = dict(thread.tool_resources or {})
    search = dict(resources.get("file_search") or {})
    ids = list(search.get("vector_store_ids") or [])
    if ids:
        store_id = ids[0]
        store = await session.scalar(select(VectorStore).where(VectorStore.id == store_id))
        if store is not None and is_expired(store):
            raise expired_error(store_id, "attachments")
    else:
        store = await create_store(
            session, VectorStoreCreate(name=f"{thread_id} files", expires_after=THREAD_STORE_EXPIRY)
        )
        store_id = store.id
        search["vector_store_ids"] = [store_id]
        resources["file_search"] = search
        await session.execute(
            update(Thread).where(Thread.id == thread_id).values(tool_resources=resources)
        )
    await add_files(session, store_id, [(file_id, None) for file_id in file_ids], None)
