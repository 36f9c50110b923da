"""Database side of executing responses: leased work (``..leases``), as runs are.

A background response is claimed (queued, unowned or with a lapsed lease -> owned), then
started (queued and owned by me -> in_progress), each a compare-and-set. A response
created in the foreground is
owned and in_progress from its first transaction. Executors renew leases by heartbeat;
a lapsed lease means the worker died: a background response is executed once more
(``MAX_ATTEMPTS``, as runs), a foreground one, whose caller is gone, fails.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from ..db import Database
from ..errors import APIError
from ..leases import Leases
from ..runs.claims import MAX_ATTEMPTS
from .prompt import build_body, fit_history
from .store import chain_history, conversation_history, own_inputs
from .tables import ResponseRow

__all__ = ["Started", "claim_queued", "heartbeat", "recover_lapsed", "release", "start"]

log = logging.getLogger(__name__)


LEASES = Leases(ResponseRow, "id", pending="queued", held=("queued", "in_progress"))


async def claim_queued(db: Database, worker: str, limit: int, lease: float) -> list[str]:
    return await LEASES.claim(db, worker, limit, lease)


@dataclass
class Started:
    row: ResponseRow
    body: dict[str, Any] | None
    # Set when the prompt could not be built (a chained response was deleted meanwhile).
    error: str | None = None


async def start(
    db: Database, response_id: str, worker: str, lease: float, context_tokens: int
) -> Started | None:
    """queued (held by ``worker``) -> in_progress, with the prompt built from the store."""
    async with db.write() as session:
        row = await session.scalar(
            update(ResponseRow)
            .where(
                ResponseRow.id == response_id,
                ResponseRow.status == "queued",
                ResponseRow.worker_id == worker,
            )
            .values(
                status="in_progress",
                lease_expires_at=time.time() + lease,
                attempts=ResponseRow.attempts + 1,
            )
            .returning(ResponseRow)
            .execution_options(synchronize_session=False)
        )
        if row is None:
            return None
        try:
            if row.previous_response_id:
                history = await chain_history(session, row.previous_response_id)
            elif row.conversation_id:
                history = await conversation_history(session, row.conversation_id)
            else:
                history = []
            inputs = await own_inputs(session, row.id)
            messages = fit_history(
                row.instructions, history, inputs, row.truncation, context_tokens
            )
        except APIError as exc:
            return Started(row, None, exc.message)
        return Started(row, build_body(row, messages))


async def heartbeat(db: Database, worker: str, ids: list[str], lease: float) -> list[str]:
    """Renew the leases of the responses ``worker`` executes; returns those cancelled."""
    if not ids:
        return []
    async with db.write() as session:
        await LEASES.renew(session, worker, ids, lease)
        gone = await session.scalars(
            select(ResponseRow.id).where(
                ResponseRow.id.in_(ids), ResponseRow.status.not_in(("queued", "in_progress"))
            )
        )
        found = set(
            (await session.scalars(select(ResponseRow.id).where(ResponseRow.id.in_(ids)))).all()
        )
        # Cancelled elsewhere, or deleted: either way, stop executing it.
        return list(gone.all()) + [i for i in ids if i not in found]


async def recover_lapsed(db: Database, lease: float) -> list[str]:
    """Responses whose worker stopped heartbeating: requeue a background one once, else
    fail it. What the dead worker streamed was never written, so nothing is half-done."""
    at = time.time()
    recovered: list[str] = []
    async with db.write() as session:
        for row in (await session.scalars(LEASES.lapsed(db, at, ("in_progress",)))).all():
            message = f"The worker executing this response stopped (no heartbeat for {lease:g} s)."
            if row.background and row.attempts < MAX_ATTEMPTS:
                row.status = "queued"
                row.worker_id = None
                row.lease_expires_at = None
            else:
                row.status = "failed"
                if row.background:
                    message += f" It was attempted {row.attempts} times."
                row.error = {"code": "server_error", "message": message}
            log.warning("recovered response %s (lease lapsed): now %s", row.id, row.status)
            recovered.append(row.id)
    return recovered


async def release(db: Database, worker: str) -> None:
    """At shutdown: let other workers (or this one after a restart) take ours at once."""
    await LEASES.release(db, worker)
