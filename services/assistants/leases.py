"""Leased work in the database: one claiming scheme for runs, responses and ingestion.

A row is claimable in its ``pending`` status when no worker holds it or its holder's lease
lapsed. Claiming is a compare-and-set in one transaction (rows locked with SKIP LOCKED on
PostgreSQL, so replicas polling together take disjoint rows without waiting); a worker
renews its leases by heartbeat; one that stops heartbeating is recovered by any replica;
one that shuts down releases its rows so they are taken at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .db import Database

__all__ = ["Leases"]


@dataclass(frozen=True)
class Leases:
    """The lease columns of ``table`` (``worker_id``, ``lease_expires_at``, ``status``,
    ``seq``): ``pending`` is the status a row is claimed in, ``held`` those a worker holds."""

    table: Any
    key: str
    pending: str
    held: tuple[str, ...]

    def _key(self) -> Any:
        return getattr(self.table, self.key)

    def claimable(self, at: float) -> Any:
        t = self.table
        return and_(t.status == self.pending, or_(t.worker_id.is_(None), t.lease_expires_at < at))

    def locking(self, db: Database, stmt: Select[Any]) -> Select[Any]:
        """``stmt`` taking row locks that other replicas skip (PostgreSQL; SQLite has one
        writer, which is lock enough)."""
        return stmt if db.is_sqlite else stmt.with_for_update(skip_locked=True)

    async def any_claimable(self, db: Database, at: float) -> bool:
        """Look before locking: polls mostly find nothing, and on SQLite a write
        transaction would take the database's one write lock from requests every time."""
        async with db.read() as session:
            probe = select(self._key()).where(self.claimable(at)).limit(1)
            return await session.scalar(probe) is not None

    async def claim(self, db: Database, worker: str, limit: int, lease: float) -> list[Any]:
        """Take up to ``limit`` claimable rows, oldest first; returns their keys."""
        at = time.time()
        if not await self.any_claimable(db, at):
            return []
        async with db.write() as session:
            stmt = select(self._key()).where(self.claimable(at)).order_by(self.table.seq)
            keys = list((await session.scalars(self.locking(db, stmt.limit(limit)))).all())
            if not keys:
                return []
            result = await session.execute(
                update(self.table)
                .where(self._key().in_(keys), self.claimable(at))
                .values(worker_id=worker, lease_expires_at=at + lease)
                .returning(self._key())
            )
            return list(result.scalars().all())

    async def renew(self, session: AsyncSession, worker: str, keys: list[Any], lease: float) -> int:
        """Extend ``worker``'s leases on ``keys`` it still holds; how many it holds."""
        result = await session.execute(
            update(self.table)
            .where(
                self._key().in_(keys),
                self.table.worker_id == worker,
                self.table.status.in_(self.held),
            )
            .values(lease_expires_at=time.time() + lease)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def lapsed(self, db: Database, at: float, statuses: tuple[str, ...]) -> Select[Any]:
        """Rows in ``statuses`` whose worker stopped heartbeating, locked for recovery."""
        stmt = select(self.table).where(
            self.table.status.in_(statuses), self.table.lease_expires_at < at
        )
        return self.locking(db, stmt)

    async def release(self, db: Database, worker: str, **values: Any) -> None:
        """At shutdown: ``worker``'s rows are claimable (or recoverable) by anyone at once."""
        async with db.write() as session:
            await session.execute(
                update(self.table)
                .where(self.table.worker_id == worker, self.table.status.in_(self.held))
                .values(lease_expires_at=0.0, **values)
            )
