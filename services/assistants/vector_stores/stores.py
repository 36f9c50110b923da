"""Vector stores: create (with files), read, modify, delete, list; counts, usage and expiry
are derived from the store's files when it is read, so they are never stale."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import InvalidRequest, not_found
from ..ids import new_id
from ..pagination import PageParams, fetch_page
from ..tables import Assistant, Thread, VectorStore, VectorStoreFile
from .schemas import VectorStoreCreate, VectorStoreModify, dump
from .store_files import add_files

__all__ = [
    "create_store",
    "delete_store",
    "expired_error",
    "file_counts",
    "get_store",
    "is_expired",
    "list_stores",
    "modify_store",
    "store_object",
    "touch",
    "use_store",
]

STATUSES = ("in_progress", "completed", "failed", "cancelled")
DAY = 86_400


def counts_object(counts: dict[str, int]) -> dict[str, int]:
    shaped = {status: counts.get(status, 0) for status in STATUSES}
    shaped["total"] = sum(shaped.values())
    return shaped


async def file_counts(session: Any, store_ids: list[str]) -> dict[str, tuple[dict[str, int], int]]:
    """Per store: files by status, and the bytes its completed files use."""
    rows = await session.execute(
        select(
            VectorStoreFile.vector_store_id,
            VectorStoreFile.status,
            func.count(),
            func.coalesce(func.sum(VectorStoreFile.usage_bytes), 0),
        )
        .where(VectorStoreFile.vector_store_id.in_(store_ids))
        .group_by(VectorStoreFile.vector_store_id, VectorStoreFile.status)
    )
    result: dict[str, tuple[dict[str, int], int]] = {sid: ({}, 0) for sid in store_ids}
    for store_id, status, count, usage in rows.all():
        counts, total_usage = result[store_id]
        counts[status] = int(count)
        result[store_id] = (counts, total_usage + int(usage))
    return result


def is_expired(row: Any) -> bool:
    """Past its ``expires_at``: an expired store stays expired, and cannot be used."""
    return row.expires_at is not None and row.expires_at <= now()


def expired_error(store_id: str, param: str = "vector_store_id") -> InvalidRequest:
    return InvalidRequest(
        f"Vector store '{store_id}' has expired and can no longer be used. Create a new "
        "vector store with the same files to use them again.",
        param=param,
        code="vector_store_expired",
    )


def store_object(row: Any, counts: dict[str, int], usage: int) -> dict[str, Any]:
    if is_expired(row):
        status = "expired"
    elif counts.get("in_progress"):
        status = "in_progress"
    else:
        status = "completed"
    shaped = {
        "id": row.id,
        "object": "vector_store",
        "created_at": row.created_at,
        "name": row.name or "",
        "usage_bytes": usage,
        "file_counts": counts_object(counts),
        "status": status,
        "expires_at": row.expires_at,
        "last_active_at": row.last_active_at,
        "metadata": row.metadata_ or {},
    }
    if row.expires_after:
        shaped["expires_after"] = row.expires_after
    return shaped


async def shaped(session: AsyncSession, row: VectorStore) -> dict[str, Any]:
    counts, usage = (await file_counts(session, [row.id]))[row.id]
    return store_object(row, counts, usage)


def _expiry(row: VectorStore) -> int | None:
    if not row.expires_after or row.last_active_at is None:
        return None
    return row.last_active_at + int(row.expires_after["days"]) * DAY


def touch(row: VectorStore) -> None:
    """The store was used: ``last_active_at`` moves, and an expiry anchored on it too;
    an expired store is left as it is (nothing brings it back)."""
    if is_expired(row):
        return
    row.last_active_at = now()
    row.expires_at = _expiry(row)


async def create_store(session: AsyncSession, body: VectorStoreCreate) -> VectorStore:
    created = now()
    row = VectorStore(
        id=new_id("vs_"),
        created_at=created,
        name=body.name,
        metadata_=body.metadata or {},
        expires_after=dump(body.expires_after),
        last_active_at=created,
        chunks_version=0,
    )
    row.expires_at = _expiry(row)
    session.add(row)
    await session.flush()
    if body.file_ids:
        await add_files(
            session,
            row.id,
            [(file_id, None) for file_id in body.file_ids],
            dump(body.chunking_strategy),
        )
    return row


async def get_store(session: AsyncSession, store_id: str) -> VectorStore:
    row = await session.scalar(select(VectorStore).where(VectorStore.id == store_id))
    if row is None:
        raise not_found("vector store", store_id, "vector_store_id")
    return row


async def use_store(session: AsyncSession, store_id: str) -> VectorStore:
    """The store, for a change that uses it (adding files): 400 once it has expired."""
    row = await get_store(session, store_id)
    if is_expired(row):
        raise expired_error(store_id)
    touch(row)
    return row


async def modify_store(
    session: AsyncSession, store_id: str, body: VectorStoreModify
) -> VectorStore:
    row = await get_store(session, store_id)
    fields = body.model_fields_set
    if "name" in fields:
        row.name = body.name
    if "metadata" in fields:
        row.metadata_ = body.metadata or {}
    if "expires_after" in fields and not is_expired(row):
        row.expires_after = dump(body.expires_after)
        row.expires_at = _expiry(row)
    await session.flush()
    return row


async def delete_store(session: AsyncSession, store_id: str) -> None:
    """The store, its files and chunks (by cascade), and every reference to it in the
    tool_resources of assistants and threads, so none is left pointing at nothing."""
    result = await session.execute(delete(VectorStore).where(VectorStore.id == store_id))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise not_found("vector store", store_id, "vector_store_id")
    await session.execute(
        delete(VectorStoreFile).where(VectorStoreFile.vector_store_id == store_id)
    )
    for table in (Assistant, Thread):
        rows = await session.scalars(
            select(table).where(cast(table.tool_resources, String).contains(store_id))
        )
        for holder in rows.all():
            resources = dict(holder.tool_resources or {})
            search = dict(resources.get("file_search") or {})
            ids = [i for i in search.get("vector_store_ids", []) if i != store_id]
            search["vector_store_ids"] = ids
            resources["file_search"] = search
            await session.execute(
                update(table).where(table.id == holder.id).values(tool_resources=resources)
            )


async def list_stores(session: AsyncSession, params: PageParams) -> dict[str, Any]:
    page = await fetch_page(session, VectorStore, params, {}, lambda r: {"id": r.id, "row": r})
    rows = [item["row"] for item in page["data"]]
    stats = await file_counts(session, [r.id for r in rows])
    page["data"] = [store_object(r, *stats[r.id]) for r in rows]
    return page
