"""Claiming files to ingest: leased work (``..leases``), as runs are. A lapsed lease (a
dead worker) makes the file claimable again, up to ``MAX_ATTEMPTS``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update

from ..db import Database
from ..leases import Leases
from ..tables import Chunk, File, VectorStore, VectorStoreFile
from ..vector_stores.stores import touch

__all__ = ["MAX_ATTEMPTS", "Claimed", "claim", "finish", "heartbeat", "release"]

MAX_ATTEMPTS = 2


@dataclass(frozen=True)
class Claimed:
    seq: int
    store_id: str
    file_id: str
    filename: str
    strategy: dict[str, Any]
    attempts: int


LEASES = Leases(VectorStoreFile, "seq", pending="in_progress", held=("in_progress",))


async def claim(db: Database, worker: str, lease: float) -> Claimed | None:
    """One file nobody (alive) is ingesting, now held by ``worker``."""
    at = time.time()
    if not await LEASES.any_claimable(db, at):
        return None
    async with db.write() as session:
        stmt = select(VectorStoreFile).where(LEASES.claimable(at)).order_by(VectorStoreFile.seq)
        row = await session.scalar(LEASES.locking(db, stmt.limit(1)))
        if row is None:
            return None
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            row.worker_id = None
            row.last_error = {
                "code": "server_error",
                "message": f"Ingestion was interrupted {row.attempts} times; giving up.",
            }
            return None
        row.worker_id = worker
        row.lease_expires_at = at + lease
        row.attempts += 1
        filename = await session.scalar(select(File.filename).where(File.id == row.id))
        return Claimed(
            seq=row.seq,
            store_id=row.vector_store_id,
            file_id=row.id,
            filename=filename or "",
            strategy=row.chunking_strategy,
            attempts=row.attempts,
        )


async def heartbeat(db: Database, worker: str, seq: int, lease: float) -> bool:
    """Renew the lease; False when the file is no longer ours (cancelled, removed)."""
    async with db.write() as session:
        return await LEASES.renew(session, worker, [seq], lease) > 0


async def finish(
    db: Database,
    worker: str,
    job: Claimed,
    *,
    chunks: list[dict[str, Any]] | None = None,
    usage_bytes: int = 0,
    error: dict[str, str] | None = None,
) -> bool:
    """Completed (with its chunks) or failed, in one transaction, only while the file is
    still ours: a worker that lost its claim writes nothing, so nothing is doubled."""
    async with db.write() as session:
        row = await session.scalar(
            select(VectorStoreFile).where(
                VectorStoreFile.seq == job.seq,
                VectorStoreFile.worker_id == worker,
                VectorStoreFile.status == "in_progress",
            )
        )
        if row is None:
            return False
        row.worker_id = None
        row.lease_expires_at = None
        if error is not None:
            row.status = "failed"
            row.last_error = error
            return True
        await session.execute(
            delete(Chunk).where(Chunk.vector_store_id == job.store_id, Chunk.file_id == job.file_id)
        )
        if chunks:
            await session.execute(Chunk.__table__.insert(), chunks)
        row.status = "completed"
        row.usage_bytes = usage_bytes
        row.last_error = None
        await session.execute(
            update(VectorStore)
            .where(VectorStore.id == job.store_id)
            .values(chunks_version=VectorStore.chunks_version + 1)
        )
        store = await session.scalar(select(VectorStore).where(VectorStore.id == job.store_id))
        if store is not None:
            touch(store)  # activity: an expiry anchored on last_active_at moves with it
        return True


async def release(db: Database, worker: str) -> None:
    """At shutdown: our files are claimable at once by anyone, the interrupted attempt not
    counted."""
    await LEASES.release(db, worker, attempts=VectorStoreFile.attempts - 1)
