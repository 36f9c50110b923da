"""Database side of execution: claiming runs, leases and heartbeats, recovery and expiry.

Runs are leased work (``..leases``): claimed (queued, unowned or with a lapsed lease →
owned by a worker), then started (queued and owned by me → in_progress), each hand-over a
compare-and-set in one transaction, so no run is executed twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..db import Database
from ..domain.runs import end_open_steps, mark_cancelled
from ..leases import Leases
from ..tables import Message, Run, RunStep
from .objects import message_rows

__all__ = [
    "LEASES",
    "MAX_ATTEMPTS",
    "Started",
    "claim_queued",
    "expire_waiting_runs",
    "heartbeat",
    "recover_lapsed_runs",
    "release",
    "start_created_run",
    "start_run",
]

log = logging.getLogger(__name__)

# A run whose worker died is executed once more; if that attempt dies too, it fails.
MAX_ATTEMPTS = 2
LEASES = Leases(Run, "id", pending="queued", held=("queued", "in_progress", "cancelling"))


async def claim_queued(db: Database, worker: str, limit: int, lease: float) -> list[str]:
    """Take up to ``limit`` queued runs nobody (alive) holds; returns their ids."""
    return await LEASES.claim(db, worker, limit, lease)


@dataclass
class Started:
    """A run just moved to in_progress, with what its prompt is built from.

    ``prepared`` holds the rows of the message the model may write, inserted in the
    starting transaction so that the first token costs no database round trip.
    """

    run: Run
    thread_messages: list[Message]
    steps: list[RunStep]
    own_messages: dict[str, Message]
    prepared: tuple[Message, RunStep]


async def start_run(db: Database, run_id: str, worker: str, lease: float) -> Started | None:
    """queued (held by ``worker``) → in_progress; None when the run is no longer ours to start."""
    async with db.write() as session:
        run = await session.scalar(
            update(Run)
            .where(Run.id == run_id, Run.status == "queued", Run.worker_id == worker)
            .values(
                status="in_progress",
                started_at=now(),
                lease_expires_at=time.time() + lease,
                attempts=Run.attempts + 1,
            )
            .returning(Run)
            .execution_options(synchronize_session=False)
        )
        if run is None:
            return None
        return await _load(session, run)


async def start_created_run(session: AsyncSession, run: Run, worker: str, lease: float) -> Started:
    """Start a run inside the transaction that creates it (a streamed create): one round
    trip fewer before the first token."""
    run.status = "in_progress"
    run.started_at = now()
    run.worker_id = worker
    run.lease_expires_at = time.time() + lease
    run.attempts += 1
    return await _load(session, run, fresh=True)


async def _load(session: AsyncSession, run: Run, *, fresh: bool = False) -> Started:
    """What the run's prompt is built from: the thread, and what the run already did
    (nothing yet, when ``fresh``)."""
    messages = (
        await session.scalars(
            select(Message).where(Message.thread_id == run.thread_id).order_by(Message.seq)
        )
    ).all()
    steps = (
        []
        if fresh
        else (
            await session.scalars(
                select(RunStep).where(RunStep.run_id == run.id).order_by(RunStep.seq)
            )
        ).all()
    )
    own = {m.id: m for m in messages if m.run_id == run.id}
    # Empty messages are placeholders a crashed attempt left behind; they say nothing.
    thread = [m for m in messages if m.run_id != run.id and m.content]
    prepared = message_rows(run)
    session.add_all(prepared)
    return Started(run, thread, list(steps), own, prepared)


async def heartbeat(db: Database, worker: str, run_ids: list[str], lease: float) -> list[str]:
    """Renew the leases of the runs ``worker`` executes; returns those asked to cancel."""
    if not run_ids:
        return []
    async with db.write() as session:
        await LEASES.renew(session, worker, run_ids, lease)
        cancelling = await session.scalars(
            select(Run.id).where(Run.id.in_(run_ids), Run.status == "cancelling")
        )
        return list(cancelling.all())


async def _end_open_messages(session: AsyncSession, run_id: str, reason: str) -> None:
    """A dead attempt's open messages. One still empty is the placeholder its start wrote
    (text is written when a message ends): it goes, with its message_creation step, so a
    retry leaves one reply, not an empty one beside it. One with text is closed incomplete."""
    messages = (
        await session.scalars(
            select(Message).where(Message.run_id == run_id, Message.status == "in_progress")
        )
    ).all()
    empty = {m.id for m in messages if not m.content}
    if empty:
        steps = await session.scalars(
            select(RunStep).where(
                RunStep.run_id == run_id,
                RunStep.type == "message_creation",
                RunStep.status == "in_progress",
            )
        )
        for step in steps.all():
            if (step.step_details or {}).get("message_creation", {}).get("message_id") in empty:
                await session.delete(step)
    stamp = now()
    for message in messages:
        if message.id in empty:
            await session.delete(message)
        else:
            message.status = "incomplete"
            message.incomplete_at = stamp
            message.incomplete_details = {"reason": reason}
    await session.flush()


async def recover_lapsed_runs(db: Database, lease: float) -> list[str]:
    """Runs whose worker stopped heartbeating: requeue them once, else end them.

    Whatever the dead worker wrote stays, but the empty reply it had just begun.
    """
    at = time.time()
    recovered: list[tuple[str, str]] = []
    async with db.write() as session:
        stmt = LEASES.lapsed(db, at, ("in_progress", "cancelling"))
        for run in (await session.scalars(stmt)).all():
            error = {
                "code": "server_error",
                "message": (
                    f"The worker executing this run stopped (no heartbeat for {lease:g} s)."
                ),
            }
            cancelling = run.status == "cancelling"
            await _end_open_messages(
                session, run.id, "run_cancelled" if cancelling else "run_failed"
            )
            steps = await end_open_steps(session, run.id, "failed")
            for step in steps:
                step.last_error = error
            if cancelling:
                mark_cancelled(run)
            elif run.attempts < MAX_ATTEMPTS:
                run.status = "queued"
                run.worker_id = None
                run.lease_expires_at = None
            else:
                run.status = "failed"
                run.failed_at = now()
                run.expires_at = None
                run.last_error = {
                    **error,
                    "message": error["message"] + f" It was attempted {run.attempts} times.",
                }
            recovered.append((run.id, run.status))
    # Said only once the transaction committed: a failed write recovers nothing.
    for run_id, status in recovered:
        log.warning("recovered run %s (lease lapsed): now %s", run_id, status)
    return [run_id for run_id, _ in recovered]


async def expire_waiting_runs(db: Database) -> list[str]:
    """requires_action runs past expires_at → expired, their tool-call steps too."""
    stamp = now()
    async with db.write() as session:
        stmt = select(Run).where(Run.status == "requires_action", Run.expires_at <= stamp)
        runs = list((await session.scalars(LEASES.locking(db, stmt))).all())
        for run in runs:
            await end_open_steps(session, run.id, "expired")
            run.status = "expired"
            run.required_action = None
        return [r.id for r in runs]


async def release(db: Database, worker: str) -> None:
    """At shutdown: let other workers (or this one after a restart) take our runs at once."""
    await LEASES.release(db, worker)
