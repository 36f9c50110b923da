"""/v1/threads/{thread_id}/runs, /v1/threads/runs and run steps routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ...config import Settings
from ...domain import runs as domain
from ...domain.threads import create_thread, require_thread, thread_object
from ...runs.claims import Started, start_created_run
from ...runs.events import Event, sse_stream
from ...runs.executor import RunExecutor
from ...schemas.common import ListResponse, dump_optional
from ...schemas.runs import (
    RunCreate,
    RunModify,
    RunObject,
    RunStepObject,
    SubmitToolOutputs,
    ThreadAndRunCreate,
)
from ...tables import Run
from ..deps import DatabaseDep, PageDep, SettingsDep
from ..json_route import JSONRoute

router = APIRouter(prefix="/threads", tags=["runs"], route_class=JSONRoute)

# What runs.poll in the SDK waits between retrievals of an active run.
POLL_AFTER_MS = "200"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _executor(request: Request) -> RunExecutor:
    return request.app.state.executor


def _stream(
    executor: RunExecutor, run_id: str, prelude: list[Event], started: Started | None = None
) -> StreamingResponse:
    """Subscribe before the execution starts, so not one event can be missed."""
    sub = executor.bus.subscribe(run_id)
    executor.execute_now(run_id, started)
    return StreamingResponse(
        sse_stream(sub, prelude), media_type="text/event-stream", headers=SSE_HEADERS
    )


def _begin(
    executor: RunExecutor, run_id: str, created: list[Event], started: Started | None
) -> Any:
    """A created run, not streamed: executed here when started, else left to the claim
    loop. Answered as it was created (queued), as OpenAI answers."""
    if started is not None:
        executor.execute_now(run_id, started)
    else:
        executor.wake()
    return created[0][1]


async def _create_run(
    session: AsyncSession,
    executor: RunExecutor,
    thread_id: str,
    body: RunCreate | ThreadAndRunCreate,
    settings: Settings,
) -> tuple[Run, list[Event], Started | None]:
    """Create a run and, when streamed or when this process has room for it, start it in
    the same transaction. Returns the run, its creation events (as it was when queued) and,
    when started, what its execution needs."""
    row = await domain.create_run(
        session, thread_id, body, expiry_seconds=settings.run_expiry_seconds
    )
    queued = domain.run_object(row)
    created: list[Event] = [("thread.run.created", queued), ("thread.run.queued", queued)]
    if not body.stream and not executor.can_start():
        return row, created, None  # the claim loop (of any replica) takes it
    # Started in the transaction that creates it: a streamed run's events flow from this
    # process, and any run skips the claim loop's wake-up, read and two writes (on SQLite
    # each write waits its turn) before its first token.
    started = await start_created_run(session, row, executor.worker, settings.run_lease_seconds)
    return row, created, started


@router.post("/runs", response_model=RunObject)
async def create_thread_and_run(
    body: ThreadAndRunCreate, request: Request, db: DatabaseDep, settings: SettingsDep
) -> Any:
    executor = _executor(request)
    async with db.write() as session:
        thread = await create_thread(session, body.thread)
        if body.tool_resources is not None:
            thread.tool_resources = dump_optional(body.tool_resources)
        row, created, started = await _create_run(session, executor, thread.id, body, settings)
        prelude = [("thread.created", thread_object(thread)), *created]
    if body.stream:
        return _stream(executor, row.id, prelude, started)
    return _begin(executor, row.id, created, started)


@router.post("/{thread_id}/runs", response_model=RunObject)
async def create_run(
    thread_id: str,
    body: RunCreate,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> Any:
    executor = _executor(request)
    async with db.write() as session:
        row, prelude, started = await _create_run(session, executor, thread_id, body, settings)
    if body.stream:
        return _stream(executor, row.id, prelude, started)
    return _begin(executor, row.id, prelude, started)


@router.get("/{thread_id}/runs", response_model=ListResponse[RunObject])
async def list_runs(thread_id: str, db: DatabaseDep, page: PageDep) -> Any:
    async with db.read() as session:
        await require_thread(session, thread_id)
        return await domain.list_runs(session, thread_id, page)


@router.get("/{thread_id}/runs/{run_id}", response_model=RunObject)
async def retrieve_run(thread_id: str, run_id: str, db: DatabaseDep, response: Response) -> Any:
    async with db.read() as session:
        row = await domain.get_run(session, thread_id, run_id)
    response.headers["openai-poll-after-ms"] = POLL_AFTER_MS
    return domain.run_object(row)


@router.post("/{thread_id}/runs/{run_id}", response_model=RunObject)
async def modify_run(thread_id: str, run_id: str, body: RunModify, db: DatabaseDep) -> Any:
    async with db.write() as session:
        return domain.run_object(await domain.modify_run(session, thread_id, run_id, body))


@router.post("/{thread_id}/runs/{run_id}/cancel", response_model=RunObject)
async def cancel_run(thread_id: str, run_id: str, request: Request, db: DatabaseDep) -> Any:
    async with db.write() as session:
        row, tell_executor = await domain.cancel_run(session, thread_id, run_id)
    if tell_executor:
        # Other replicas learn of it from the database at their next heartbeat.
        _executor(request).request_cancel(run_id)
    return domain.run_object(row)


@router.post("/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=RunObject)
async def submit_tool_outputs(
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputs,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Any:
    executor = _executor(request)
    owner = executor.worker if body.stream else None
    async with db.write() as session:
        row, step = await domain.submit_tool_outputs(
            session,
            thread_id,
            run_id,
            body,
            owner=owner,
            lease_seconds=settings.run_lease_seconds,
        )
    if body.stream:
        prelude: list[Event] = [
            ("thread.run.step.completed", domain.step_object(step)),
            ("thread.run.queued", domain.run_object(row)),
        ]
        return _stream(executor, row.id, prelude)
    executor.wake()
    return domain.run_object(row)


@router.get("/{thread_id}/runs/{run_id}/steps", response_model=ListResponse[RunStepObject])
async def list_run_steps(thread_id: str, run_id: str, db: DatabaseDep, page: PageDep) -> Any:
    async with db.read() as session:
        return await domain.list_steps(session, thread_id, run_id, page)


@router.get("/{thread_id}/runs/{run_id}/steps/{step_id}", response_model=RunStepObject)
async def retrieve_run_step(thread_id: str, run_id: str, step_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        return domain.step_object(await domain.get_step(session, thread_id, run_id, step_id))


__all__ = ["router"]
