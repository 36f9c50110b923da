"""/v1/responses: create (streamed, background or waited for), retrieve, delete, cancel,
input items and input token counts."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from ...clock import now
from ...db import Database
from ...errors import InvalidRequest
from ...ids import new_id
from ...responses import store
from ...responses.code_interpreter import resolve_container
from ...responses.file_search import check_stores
from ...responses.items import input_items
from ...responses.objects import (
    INCLUDABLE,
    normalise_text,
    normalise_tool_choice,
    normalise_tools,
    response_object,
)
from ...responses.prompt import build_body, fit_history, input_token_count
from ...responses.schemas import InputTokensBody, ResponseCreate
from ...responses.shapes import InputTokensObject, ItemList, ResponseObject
from ...responses.stream import response_sse
from ...responses.tables import ResponseRow
from ...responses.worker import ResponsesWorker
from ...schemas.common import Deleted
from ..deps import DatabaseDep, PageDep, SettingsDep
from ..json_route import JSONRoute
from ..responses import json_response

router = APIRouter(prefix="/responses", tags=["responses"], route_class=JSONRoute)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Request fields of OpenAI's API that name features this server does not have.
UNSUPPORTED_FIELDS = (
    "prompt",
    "context_management",
    "background_options",
    "moderation",
    "image",
    "access_programs",
)
ECHOED = (
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
    "reasoning",
    "max_tool_calls",
    "top_logprobs",
)


def _worker(request: Request) -> ResponsesWorker:
    return request.app.state.responses


def _check(body: ResponseCreate | InputTokensBody) -> None:
    if body.previous_response_id and body.conversation is not None:
        raise InvalidRequest(
            "'previous_response_id' and 'conversation' cannot be used together.",
            param="conversation",
        )
    if not body.input and body.conversation is None and not body.previous_response_id:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")


async def _history(
    session: AsyncSession, body: ResponseCreate | InputTokensBody
) -> list[dict[str, Any]]:
    if body.previous_response_id:
        return await store.chain_history(session, body.previous_response_id)
    conversation = body.conversation_id()
    if conversation:
        await store.get_conversation(session, conversation)
        return await store.conversation_history(session, conversation)
    return []


def _new_row(body: ResponseCreate) -> ResponseRow:
    if not body.model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    for name in UNSUPPORTED_FIELDS:
        if getattr(body, name) is not None:
            raise InvalidRequest(
                f"'{name}' is not supported by this server.", param=name, code="unsupported"
            )
    for i, name in enumerate(body.include or []):
        if name not in INCLUDABLE:
            raise InvalidRequest(
                f"Invalid 'include[{i}]': '{name}' is not one of {sorted(INCLUDABLE)}.",
                param=f"include[{i}]",
            )
    tools = normalise_tools(body.tools)
    return ResponseRow(
        id=new_id("resp_"),
        created_at=now(),
        status="in_progress",
        model=body.model,
        instructions=body.instructions,
        previous_response_id=body.previous_response_id,
        conversation_id=body.conversation_id(),
        background=bool(body.background),
        tools=tools,
        tool_choice=normalise_tool_choice(body.tool_choice, tools),
        parallel_tool_calls=body.parallel_tool_calls is not False,
        temperature=body.temperature,
        top_p=body.top_p,
        max_output_tokens=body.max_output_tokens,
        truncation=body.truncation or "disabled",
        text=normalise_text(body.text),
        include=body.include or [],
        extra={k: getattr(body, k) for k in ECHOED if getattr(body, k) is not None},
        output=[],
        metadata_=body.metadata or {},
        attempts=0,
    )


@router.post("", response_model=ResponseObject)
async def create_response(
    body: ResponseCreate, request: Request, db: DatabaseDep, settings: SettingsDep
) -> Any:
    _check(body)
    row = _new_row(body)
    saved = body.store is not False
    if not saved and (row.background or row.conversation_id):
        which = "background" if row.background else "conversation"
        raise InvalidRequest(f"'{which}' requires store=true.", param=which)
    inputs = input_items(body.input)
    worker = _worker(request)
    lease = settings.run_lease_seconds
    context = settings.responses_context_tokens
    idle = settings.code_interpreter_idle_seconds
    save: Callable[[], Awaitable[None]] | None = None
    if row.background:
        async with db.write() as session:
            history = await _history(session, body)
            messages = fit_history(row.instructions, history, inputs, row.truncation, context)
            await _built_in_tools(session, row, history + inputs, idle)
            _take(row, worker.worker, lease, streamed=bool(body.stream))
            session.add(row)
            session.add_all(store.item_rows(inputs, kind="input", response_id=row.id))
    else:
        history: list[dict[str, Any]] = []
        if body.previous_response_id or row.conversation_id:
            async with db.read() as session:
                history = await _history(session, body)
        messages = fit_history(row.instructions, history, inputs, row.truncation, context)
        if any(t["type"] != "function" for t in row.tools):
            # A container is made (or reused) for the response, even one not stored.
            coding = any(t["type"] == "code_interpreter" for t in row.tools)
            async with db.write() if coding else db.read() as session:
                await _built_in_tools(session, row, history + inputs, idle)
        if saved:
            _take(row, worker.worker, lease, streamed=bool(body.stream))
            save = partial(_save, db, row, inputs)
    if row.background and not body.stream:
        worker.executor.wake()
        return json_response(response_object(row))
    # A background response streamed here starts through the claim path (queued -> mine).
    execution = worker.prepare(
        row, None if row.background else build_body(row, messages), store=saved
    )
    saving = execution.save_when_asked(save) if save is not None else None
    if body.stream:
        sub = worker.bus.subscribe(row.id)
        prelude = [execution.event("response.created", response=execution.snapshot())]
        if row.background:
            prelude.append(execution.event("response.queued", response=execution.snapshot()))
        worker.execute(execution)
        if saving is not None:
            try:
                await saving  # response.created is sent once the response is stored
            except BaseException:
                sub.close()
                execution.request_cancel()
                raise
        return StreamingResponse(
            response_sse(sub, prelude), media_type="text/event-stream", headers=SSE_HEADERS
        )
    worker.execute(execution)
    if saving is not None:
        try:
            await saving
        except BaseException:
            execution.request_cancel()
            raise
    await execution.done.wait()
    return json_response(response_object(execution.row, store=saved))


async def _built_in_tools(
    session: AsyncSession, row: ResponseRow, context: list[dict[str, Any]], idle: float
) -> None:
    """The stores file_search names exist; code_interpreter gets its container."""
    await check_stores(session, row.tools)
    container = await resolve_container(session, row.tools, context, idle)
    if container is not None:
        row.extra = {**row.extra, "container_id": container}


async def _save(db: Database, row: ResponseRow, inputs: list[dict[str, Any]]) -> None:
    async with db.write() as session:
        session.add(row)
        session.add_all(store.item_rows(inputs, kind="input", response_id=row.id))


def _take(row: ResponseRow, worker: str, lease: float, *, streamed: bool) -> None:
    """Who executes a new response: a background one is queued for any replica (or, when
    streamed, for this process); any other is this process's from the start."""
    if row.background:
        row.status = "queued"
        if streamed:
            row.worker_id, row.lease_expires_at = worker, time.time() + lease
        return
    row.status = "in_progress"
    row.worker_id = worker
    row.lease_expires_at = time.time() + lease
    row.attempts = 1


@router.post("/input_tokens", response_model=InputTokensObject)
async def count_input_tokens(body: InputTokensBody, db: DatabaseDep, settings: SettingsDep) -> Any:
    _check(body)
    tools = normalise_tools(body.tools)
    async with db.read() as session:
        history = await _history(session, body)
    messages = fit_history(
        body.instructions,
        history,
        input_items(body.input),
        body.truncation or "disabled",
        settings.responses_context_tokens,
    )
    return {"object": "response.input_tokens", "input_tokens": input_token_count(messages, tools)}


@router.get("/{response_id}", response_model=ResponseObject)
async def retrieve_response(
    response_id: str,
    db: DatabaseDep,
    stream: bool = False,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> Any:
    if stream:
        raise InvalidRequest(
            "Streaming a stored response again is not supported; retrieve it without 'stream'.",
            param="stream",
        )
    async with db.read() as session:
        row = await store.get_response(session, response_id)
    return json_response(response_object(row, include=include))


@router.delete("/{response_id}", response_model=Deleted)
async def delete_response(response_id: str, request: Request, db: DatabaseDep) -> Any:
    async with db.write() as session:
        await store.delete_response(session, response_id)
    _worker(request).request_cancel(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


@router.post("/{response_id}/cancel", response_model=ResponseObject)
async def cancel_response(response_id: str, request: Request, db: DatabaseDep) -> Any:
    async with db.write() as session:
        row, active = await store.cancel_response(session, response_id)
    if active:
        # Another replica's executor learns of it at its next heartbeat.
        _worker(request).request_cancel(response_id)
    return json_response(response_object(row))


@router.get("/{response_id}/input_items", response_model=ItemList)
async def list_input_items(
    response_id: str,
    db: DatabaseDep,
    page: PageDep,
    include: Annotated[list[str] | None, Query(alias="include[]")] = None,
) -> Any:
    async with db.read() as session:
        return json_response(
            await store.list_input_items(session, response_id, page, include or [])
        )


__all__ = ["router"]
