"""Files in vector stores, and file batches: adding (which queues ingestion), listing,
attributes, removal, and what a batch counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import InvalidRequest, not_found
from ..ids import new_id
from ..ingestion.chunking import resolve_strategy
from ..pagination import PageParams, fetch_page
from ..tables import Chunk, File, VectorStore, VectorStoreFile, VectorStoreFileBatch

__all__ = [
    "add_files",
    "batch_object",
    "cancel_batch",
    "create_batch",
    "get_batch",
    "get_store_file",
    "list_store_files",
    "remove_file_everywhere",
    "remove_store_file",
    "store_file_object",
    "update_attributes",
]

# Listeners (the ingestion worker) woken when files are queued in this process.
QUEUED_LISTENERS: list[Any] = []


def store_file_object(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "vector_store.file",
        "usage_bytes": row.usage_bytes,
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": row.status,
        "last_error": row.last_error,
        "chunking_strategy": row.chunking_strategy,
        "attributes": row.attributes or {},
    }


async def add_files(
    session: AsyncSession,
    store_id: str,
    files: list[tuple[str, dict[str, Any] | None]],
    chunking_strategy: dict[str, Any] | None,
    attributes: dict[str, Any] | None = None,
    batch_id: str | None = None,
) -> list[VectorStoreFile]:
    """Queue ``(file_id, attributes)`` pairs for ingestion into the store. A file already
    in the store is left as it is (and returned), as OpenAI does."""
    ids = [file_id for file_id, _ in files]
    known = set((await session.scalars(select(File.id).where(File.id.in_(ids)))).all())
    for position, file_id in enumerate(ids):
        if file_id not in known:
            raise InvalidRequest(
                f"No file found with id '{file_id}'.", param=f"file_ids[{position}]"
            )
    existing = {
        row.id: row
        for row in (
            await session.scalars(
                select(VectorStoreFile).where(
                    VectorStoreFile.vector_store_id == store_id, VectorStoreFile.id.in_(ids)
                )
            )
        ).all()
    }
    strategy = resolve_strategy(chunking_strategy)
    created = now()
    rows: list[VectorStoreFile] = []
    for file_id, own_attributes in files:
        if file_id in existing:
            rows.append(existing[file_id])
            continue
        row = VectorStoreFile(
            id=file_id,
            vector_store_id=store_id,
            created_at=created,
            status="in_progress",
            usage_bytes=0,
            chunking_strategy=strategy,
            attributes=own_attributes if own_attributes is not None else attributes,
            batch_id=batch_id,
            attempts=0,
        )
        session.add(row)
        existing[file_id] = row
        rows.append(row)
    await session.flush()
    for wake in QUEUED_LISTENERS:
        wake()
    return rows


async def get_store_file(session: AsyncSession, store_id: str, file_id: str) -> VectorStoreFile:
    row = await session.scalar(
        select(VectorStoreFile).where(
            VectorStoreFile.vector_store_id == store_id, VectorStoreFile.id == file_id
        )
    )
    if row is None:
        raise not_found("file in vector store", file_id, "file_id")
    return row


async def list_store_files(
    session: AsyncSession,
    store_id: str,
    params: PageParams,
    status: str | None = None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    scope: dict[str, Any] = {"vector_store_id": store_id}
    if status:
        scope["status"] = status
    if batch_id:
        scope["batch_id"] = batch_id
    return await fetch_page(session, VectorStoreFile, params, scope, store_file_object)  # type: ignore[type-var]


async def update_attributes(
    session: AsyncSession, store_id: str, file_id: str, attributes: dict[str, Any] | None
) -> VectorStoreFile:
    row = await get_store_file(session, store_id, file_id)
    row.attributes = attributes or {}
    await session.flush()
    return row


async def _drop_chunks(session: AsyncSession, pairs: list[tuple[str, str]]) -> None:
    for store_id, file_id in pairs:
        await session.execute(
            delete(Chunk).where(Chunk.vector_store_id == store_id, Chunk.file_id == file_id)
        )
    for store_id in {store_id for store_id, _ in pairs}:
        await session.execute(
            update(VectorStore)
            .where(VectorStore.id == store_id)
            .values(chunks_version=VectorStore.chunks_version + 1)
        )


async def remove_store_file(session: AsyncSession, store_id: str, file_id: str) -> None:
    """The file leaves the store (its chunks too); the file itself stays."""
    row = await get_store_file(session, store_id, file_id)
    await _drop_chunks(session, [(store_id, file_id)])
    await session.delete(row)


async def remove_file_everywhere(session: AsyncSession, file_id: str) -> None:
    """A deleted file leaves every store it was in."""
    stores = list(
        (
            await session.scalars(
                select(VectorStoreFile.vector_store_id).where(VectorStoreFile.id == file_id)
            )
        ).all()
    )
    if not stores:
        return
    await _drop_chunks(session, [(store_id, file_id) for store_id in stores])
    await session.execute(delete(VectorStoreFile).where(VectorStoreFile.id == file_id))


# -- batches ------------------------------------------------------------------------------


async def batch_counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(VectorStoreFile.status, func.count())
        .where(VectorStoreFile.batch_id == batch_id)
        .group_by(VectorStoreFile.status)
    )
    counts = {status: 0 for status in ("in_progress", "completed", "failed", "cancelled")}
    for status, count in rows.all():
        counts[status] = int(count)
    counts["total"] = sum(counts.values())
    return counts


def batch_object(row: VectorStoreFileBatch, counts: dict[str, int]) -> dict[str, Any]:
    status = row.status
    if status == "in_progress" and not counts["in_progress"]:
        status = "completed"
    return {
        "id": row.id,
        "object": "vector_store.files_batch",
        "created_at": row.created_at,
        "vector_store_id": row.vector_store_id,
        "status": status,
        "file_counts": counts,
    }


async def create_batch(
    session: AsyncSession,
    store_id: str,
    files: list[tuple[str, dict[str, Any] | None]],
    chunking_strategy: dict[str, Any] | None,
    attributes: dict[str, Any] | None,
) -> VectorStoreFileBatch:
    batch = VectorStoreFileBatch(
        id=new_id("vsfb_"),
        created_at=now(),
        vector_store_id=store_id,
        status="in_progress",
        metadata_={},
    )
    session.add(batch)
    await session.flush()
    await add_files(session, store_id, files, chunking_strategy, attributes, batch.id)
    return batch


async def get_batch(session: AsyncSession, store_id: str, batch_id: str) -> VectorStoreFileBatch:
    row = await session.scalar(
        select(VectorStoreFileBatch).where(
            VectorStoreFileBatch.id == batch_id,
            VectorStoreFileBatch.vector_store_id == store_id,
        )
    )
    if row is None:
        raise not_found("file batch", batch_id, "batch_id")
    return row


async def cancel_batch(session: AsyncSession, store_id: str, batch_id: str) -> VectorStoreFileBatch:
    """Files not yet ingested are cancelled (an ingestion under way drops its result)."""
    row = await get_batch(session, store_id, batch_id)
    await session.execute(
        update(VectorStoreFile)
        .where(VectorStoreFile.batch_id == batch_id, VectorStoreFile.status == "in_progress")
        .values(status="cancelled", worker_id=None)
    )
    if row.status == "in_progress":
        row.status = "cancelled"
    await session.flush()
    return row
