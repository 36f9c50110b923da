"""ResponsesWorker: responses executed by the run executor's loops, leases and bus.

The run executor claims background responses beside queued runs, heartbeats and recovers
them in its maintenance loop and stops them at shutdown, through the small ``Companion``
hook it offers; this module is that companion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from ..runs.executor import RunExecutor
from . import claims
from .execution import ResponseExecution
from .tables import ResponseRow

__all__ = ["ResponsesWorker", "start_responses"]

log = logging.getLogger(__name__)


class ResponsesWorker:
    def __init__(self, executor: RunExecutor, context_tokens: int) -> None:
        self.executor = executor
        self.db = executor.db
        self.worker = executor.worker
        self.lease = executor.lease
        self.context_tokens = context_tokens
        self.executions: dict[str, ResponseExecution] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def bus(self):  # type: ignore[no-untyped-def]
        return self.executor.bus

    def prepare(
        self, row: ResponseRow, body: dict[str, Any] | None = None, *, store: bool = True
    ) -> ResponseExecution:
        """An execution of ``row``, not yet started: its route may send events first."""
        return ResponseExecution(
            db=self.db,
            bus=self.executor.bus,
            worker=self.worker,
            lease=self.lease,
            context_tokens=self.context_tokens,
            source=self.executor.source,
            row=row,
            body=body,
            store=store,
            searcher=self.executor.file_search,
            interpreter=self.executor.code_interpreter,
        )

    def execute(self, execution: ResponseExecution) -> None:
        if execution.response_id in self.executions:
            return
        self.executions[execution.response_id] = execution
        task = asyncio.create_task(self._run(execution), name=f"response-{execution.response_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_cancel(self, response_id: str) -> None:
        execution = self.executions.get(response_id)
        if execution is not None:
            execution.request_cancel()

    async def _run(self, execution: ResponseExecution) -> None:
        try:
            await execution.execute()
        finally:
            self.executions.pop(execution.response_id, None)
            self.executor.slot_freed()

    # -- the executor's Companion hook ----------------------------------------------------

    def busy(self) -> int:
        return len(self.executions)

    async def claim(self, free: int) -> None:
        for response_id in await claims.claim_queued(self.db, self.worker, free, self.lease):
            self.execute(self.prepare(ResponseRow(id=response_id)))

    async def maintain(self) -> None:
        # Not one whose row is still being written: not found yet is not deleted.
        stored = [i for i, e in self.executions.items() if e.store and e.written()]
        for response_id in await claims.heartbeat(self.db, self.worker, stored, self.lease):
            self.request_cancel(response_id)
        if await claims.recover_lapsed(self.db, self.lease):
            self.executor.wake()

    async def stop(self) -> None:
        running = list(self._tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if running:
            try:
                await claims.release(self.db, self.worker)
            except Exception:
                log.exception("could not release this worker's responses; their leases will lapse")


async def start_responses(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """The WORKERS hook, after the run executor's: attaches responses to its loops."""
    executor: RunExecutor = app.state.executor
    worker = ResponsesWorker(executor, app.state.settings.responses_context_tokens)
    executor.companions.append(worker)
    app.state.responses = worker

    async def stop() -> None:
        # Detached first, so the claim loop takes no more while the executions stop.
        if worker in executor.companions:
            executor.companions.remove(worker)
        await worker.stop()

    return stop
