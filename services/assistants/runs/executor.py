"""RunExecutor: claims queued runs, executes them as tasks, heartbeats, recovers and expires.

One per process. Runs created with ``stream: true`` are claimed by the creating request and
executed here at once, so their events flow in-process; the others are claimed from the
database by the claim loop, woken in-process on creation and polling for other replicas'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import httpx
from fastapi import FastAPI

from ..config import Settings
from ..db import Database
from ..files.storage import LocalFileStorage
from ..ids import new_id
from . import claims
from .code_interpreter import CodeInterpreter
from .events import EventBus
from .execution import RunExecution
from .file_search import FileSearch
from .mock import mock_chunks
from .upstream import Timeouts, stream_chat

__all__ = ["Companion", "RunExecutor", "start_executor"]

log = logging.getLogger(__name__)


class Companion(Protocol):
    """Other work the executor's loops claim and maintain (background responses)."""

    def busy(self) -> int: ...

    async def claim(self, free: int) -> None: ...

    async def maintain(self) -> None: ...


class RunExecutor:
    def __init__(
        self,
        *,
        db: Database,
        http: httpx.AsyncClient,
        settings: Settings,
        ready: Callable[[], bool] = lambda: True,
        file_storage: LocalFileStorage | None = None,
        file_search: FileSearch | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.lease = settings.run_lease_seconds
        self.ready = ready
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{new_id('')[:8]}"
        self.bus = EventBus()
        self.executions: dict[str, RunExecution] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self.companions: list[Companion] = []
        timeouts = Timeouts(
            connect=settings.upstream_connect_timeout,
            first_token=settings.upstream_first_token_timeout,
            idle=settings.upstream_idle_timeout,
            retry=settings.upstream_retry_seconds,
        )

        def upstream(body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
            return stream_chat(http, body, timeouts)

        self.source = mock_chunks if settings.use_mock_inference else upstream
        self.code_interpreter = CodeInterpreter.from_settings(settings, file_storage)
        self.file_search = file_search

    # -- what routes call -----------------------------------------------------------------

    def execute_now(self, run_id: str, started: claims.Started | None = None) -> None:
        """Execute a run this process holds: claimed by the claim loop, or by a streamed
        create or submit (which may already have started it: ``started``)."""
        if run_id in self.executions:
            return
        execution = RunExecution(
            db=self.db,
            bus=self.bus,
            worker=self.worker,
            lease=self.lease,
            source=self.source,
            run_id=run_id,
            started=started,
            code_interpreter=self.code_interpreter,
            file_search=self.file_search,
        )
        self.executions[run_id] = execution
        task = asyncio.create_task(self._run(execution), name=f"run-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def can_start(self) -> bool:
        """Whether this process may start one more run now (ready, below its limit)."""
        return self.ready() and len(self.executions) < self.settings.max_concurrent_runs

    def wake(self) -> None:
        """A run was queued: look for work now rather than at the next poll."""
        self._wake.set()

    def slot_freed(self) -> None:
        """An execution ended: look for work now only if the executor was full, when
        queued work may be waiting for the slot; otherwise the next poll finds it."""
        busy = len(self.executions) + sum(c.busy() for c in self.companions)
        if busy + 1 >= self.settings.max_concurrent_runs:
            self._wake.set()

    def request_cancel(self, run_id: str) -> None:
        execution = self.executions.get(run_id)
        if execution is not None:
            execution.request_cancel()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="run-claims"),
            asyncio.create_task(self._maintenance_loop(), name="run-maintenance"),
        ]
        log.info("run executor %s started (lease %.1fs)", self.worker, self.lease)

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        running = list(self._tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*self._loops, *running, return_exceptions=True)
        await self.code_interpreter.stop()
        if running:
            try:
                await claims.release(self.db, self.worker)
            except Exception:
                log.exception("could not release this worker's runs; their leases will lapse")

    # -- internals ------------------------------------------------------------------------

    async def _run(self, execution: RunExecution) -> None:
        # execute() records (or at least logs) its own failures; only a cancel gets out.
        try:
            await execution.execute()
        finally:
            self.executions.pop(execution.run_id, None)
            self.slot_freed()

    async def _claim_loop(self) -> None:
        poll = self.settings.run_poll_seconds
        while True:
            self._wake.clear()
            free = self.settings.max_concurrent_runs - len(self.executions)
            free -= sum(c.busy() for c in self.companions)
            if free > 0 and self.ready():
                try:
                    for run_id in await claims.claim_queued(self.db, self.worker, free, self.lease):
                        self.execute_now(run_id)
                    for companion in self.companions:
                        free = self.settings.max_concurrent_runs - len(self.executions)
                        free -= sum(c.busy() for c in self.companions)
                        if free > 0:
                            await companion.claim(free)
                except Exception as exc:
                    log.warning("claiming runs failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def _maintenance_loop(self) -> None:
        interval = max(0.2, min(self.lease / 3, 5.0))
        while True:
            await asyncio.sleep(interval)
            if not self.ready():
                continue
            try:
                cancelling = await claims.heartbeat(
                    self.db, self.worker, list(self.executions), self.lease
                )
                for run_id in cancelling:
                    self.request_cancel(run_id)
                if await claims.recover_lapsed_runs(self.db, self.lease):
                    self.wake()
                await claims.expire_waiting_runs(self.db)
                for companion in self.companions:
                    await companion.maintain()
            except Exception as exc:
                log.warning("run maintenance failed: %s: %s", type(exc).__name__, exc)


async def start_executor(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """The WORKERS hook: one executor per app, on ``app.state.executor``."""
    executor = RunExecutor(
        db=app.state.db,
        http=app.state.http,
        settings=app.state.settings,
        ready=lambda: bool(app.state.schema_ready) and app.state.db.storage_fault is None,
        file_storage=getattr(app.state, "file_storage", None),
        file_search=FileSearch(
            db=app.state.db,
            http=app.state.http,
            cache=app.state.vector_cache,
            model=app.state.settings.embedding_model,
        ),
    )
    app.state.executor = executor
    await executor.start()
    return executor.stop
