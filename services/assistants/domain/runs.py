"""Runs: create, read, modify, cancel and submit tool outputs; the state machine's API side.

The executor (``services.assistants.runs``) owns the transitions that happen while a run
executes; this module owns the ones a client asks for.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import InvalidRequest, not_found
from ..ids import new_id
from ..pagination import PageParams, fetch_page
from ..schemas.common import dump_optional, dump_tools
from ..schemas.runs import RunCreate, RunModify, RunParameters, SubmitToolOutputs
from ..tables import Run, RunStep, Thread
from .assistants import get_assistant
from .messages import add_message, ensure_no_active_run

TERMINAL_STATUSES = ("completed", "failed", "cancelled", "expired", "incomplete")
DEFAULT_TRUNCATION = {"type": "auto", "last_messages": None}


def run_object(row: Run) -> dict[str, Any]:
    """The run as OpenAI shows it, which reports usage only once a run has ended."""
    return {
        "id": row.id,
        "object": "thread.run",
        "created_at": row.created_at,
        "thread_id": row.thread_id,
        "assistant_id": row.assistant_id,
        "status": row.status,
        "required_action": row.required_action,
        "last_error": row.last_error,
        "expires_at": row.expires_at,
        "started_at": row.started_at,
        "cancelled_at": row.cancelled_at,
        "failed_at": row.failed_at,
        "completed_at": row.completed_at,
        "incomplete_details": row.incomplete_details,
        "model": row.model,
        "instructions": row.instructions or "",
        "tools": row.tools or [],
        "metadata": row.metadata_ or {},
        "usage": row.usage if row.status in TERMINAL_STATUSES else None,
        "temperature": row.temperature,
        "top_p": row.top_p,
        "max_prompt_tokens": row.max_prompt_tokens,
        "max_completion_tokens": row.max_completion_tokens,
        "truncation_strategy": row.truncation_strategy or DEFAULT_TRUNCATION,
        "tool_choice": row.tool_choice if row.tool_choice is not None else "auto",
        "parallel_tool_calls": row.parallel_tool_calls,
        "response_format": row.response_format if row.response_format is not None else "auto",
    }


FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _without_result_content(details: dict[str, Any]) -> dict[str, Any]:
    """file_search results lose their text unless the request includes it."""
    calls = details.get("tool_calls")
    if not calls or not any(c.get("type") == "file_search" for c in calls):
        return details
    shown = []
    for call in calls:
        if call.get("type") == "file_search":
            search = dict(call.get("file_search") or {})
            results = search.get("results") or []
            search["results"] = [{k: v for k, v in r.items() if k != "content"} for r in results]
            call = {**call, "file_search": search}
        shown.append(call)
    return {**details, "tool_calls": shown}


def step_object(row: RunStep, include_content: bool = False) -> dict[str, Any]:
    details = row.step_details if include_content else _without_result_content(row.step_details)
    return {
        "id": row.id,
        "object": "thread.run.step",
        "created_at": row.created_at,
        "assistant_id": row.assistant_id,
        "thread_id": row.thread_id,
        "run_id": row.run_id,
        "type": row.type,
        "status": row.status,
        "step_details": details,
        "last_error": row.last_error,
        "expired_at": row.expired_at,
        "cancelled_at": row.cancelled_at,
        "failed_at": row.failed_at,
        "completed_at": row.completed_at,
        "metadata": row.metadata_ or {},
        "usage": row.usage,
    }


async def create_run(
    session: AsyncSession,
    thread_id: str,
    body: RunParameters,
    *,
    expiry_seconds: int,
) -> Run:
    """Add a queued run; a streamed one is then started in the same transaction
    (``runs.claims.start_created_run``), which also makes it the caller's."""
    assistant = await get_assistant(session, body.assistant_id)
    # Lock the thread so two concurrent creations cannot both pass the one-active-run check.
    thread = await session.scalar(select(Thread).where(Thread.id == thread_id).with_for_update())
    if thread is None:
        raise not_found("thread", thread_id, "thread_id")
    await ensure_no_active_run(session, thread_id, "runs")
    instructions = body.instructions if body.instructions is not None else assistant.instructions
    if isinstance(body, RunCreate):
        if body.additional_instructions:
            instructions = "\n\n".join(p for p in (instructions, body.additional_instructions) if p)
        for message in body.additional_messages or []:
            await add_message(session, thread_id, message)
    created = now()
    row = Run(
        id=new_id("run_"),
        created_at=created,
        thread_id=thread_id,
        assistant_id=assistant.id,
        status="queued",
        expires_at=created + expiry_seconds,
        model=body.model or assistant.model,
        instructions=instructions,
        tools=dump_tools(body.tools) if body.tools is not None else list(assistant.tools or []),
        metadata_=body.metadata or {},
        temperature=_first(body.temperature, assistant.temperature, 1.0),
        top_p=_first(body.top_p, assistant.top_p, 1.0),
        max_prompt_tokens=body.max_prompt_tokens,
        max_completion_tokens=body.max_completion_tokens,
        truncation_strategy=dump_optional(body.truncation_strategy) or dict(DEFAULT_TRUNCATION),
        tool_choice=dump_optional(body.tool_choice) or "auto",
        parallel_tool_calls=True if body.parallel_tool_calls is None else body.parallel_tool_calls,
        response_format=dump_optional(body.response_format) or assistant.response_format or "auto",
        attempts=0,
    )
    # Added, not flushed: a streamed run is started before the transaction ends, and one
    # INSERT of the started row is cheaper than an INSERT and an UPDATE.
    session.add(row)
    return row


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


async def get_run(
    session: AsyncSession, thread_id: str, run_id: str, *, for_update: bool = False
) -> Run:
    stmt = select(Run).where(Run.id == run_id, Run.thread_id == thread_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = await session.scalar(stmt)
    if row is None:
        raise not_found("run", run_id, "run_id")
    return row


async def list_runs(session: AsyncSession, thread_id: str, params: PageParams) -> dict[str, Any]:
    return await fetch_page(session, Run, params, {"thread_id": thread_id}, run_object)


async def modify_run(session: AsyncSession, thread_id: str, run_id: str, body: RunModify) -> Run:
    row = await get_run(session, thread_id, run_id, for_update=True)
    if "metadata" in body.model_fields_set:
        row.metadata_ = body.metadata or {}
    await session.flush()
    return row


async def get_step(session: AsyncSession, thread_id: str, run_id: str, step_id: str) -> RunStep:
    row = await session.scalar(
        select(RunStep).where(
            RunStep.id == step_id, RunStep.run_id == run_id, RunStep.thread_id == thread_id
        )
    )
    if row is None:
        raise not_found("run step", step_id, "step_id")
    return row


async def list_steps(
    session: AsyncSession,
    thread_id: str,
    run_id: str,
    params: PageParams,
    include_content: bool = False,
) -> dict[str, Any]:
    await get_run(session, thread_id, run_id)

    def shape(row: Any) -> dict[str, Any]:
        return step_object(row, include_content)

    return await fetch_page(session, RunStep, params, {"run_id": run_id}, shape)


async def open_steps(session: AsyncSession, run_id: str) -> list[RunStep]:
    stmt = select(RunStep).where(RunStep.run_id == run_id, RunStep.status == "in_progress")
    return list((await session.scalars(stmt)).all())


def end_step(step: RunStep, status: str, stamp: int) -> None:
    """``status`` is completed, cancelled, expired or failed; each has its ``<status>_at``."""
    step.status = status
    setattr(step, f"{status}_at", stamp)


async def end_open_steps(session: AsyncSession, run_id: str, status: str) -> list[RunStep]:
    """Close every in-progress step of a run as ``status`` (cancelled, expired, failed)."""
    steps = await open_steps(session, run_id)
    stamp = now()
    for step in steps:
        end_step(step, status, stamp)
    await session.flush()
    return steps


async def cancel_run(session: AsyncSession, thread_id: str, run_id: str) -> tuple[Run, bool]:
    """Cancel now when nothing executes the run; otherwise ask its executor (``cancelling``).

    Returns the run and whether an executor must be told.
    """
    row = await get_run(session, thread_id, run_id, for_update=True)
    if row.status in ("queued", "requires_action"):
        # A queued run's executor only starts it by compare-and-set on "queued", so ending
        # it here cannot race with a start.
        await end_open_steps(session, row.id, "cancelled")
        mark_cancelled(row)
        return row, False
    if row.status == "in_progress":
        row.status = "cancelling"
        await session.flush()
        return row, True
    if row.status == "cancelling":
        return row, True
    raise InvalidRequest(f"Cannot cancel run with status '{row.status}'.", param="run_id")


def mark_cancelled(row: Run) -> None:
    row.status = "cancelled"
    row.cancelled_at = now()
    row.expires_at = None
    row.required_action = None


async def submit_tool_outputs(
    session: AsyncSession,
    thread_id: str,
    run_id: str,
    body: SubmitToolOutputs,
    *,
    owner: str | None = None,
    lease_seconds: float = 0.0,
) -> tuple[Run, RunStep]:
    """Record every pending call's output on its step and queue the run again."""
    row = await get_run(session, thread_id, run_id, for_update=True)
    if row.status != "requires_action" or not row.required_action:
        raise InvalidRequest(
            f'Runs in status "{row.status}" do not accept tool outputs.', param="run_id"
        )
    pending = [c["id"] for c in row.required_action["submit_tool_outputs"]["tool_calls"]]
    outputs: dict[str, str] = {}
    for i, item in enumerate(body.tool_outputs):
        if not item.tool_call_id:
            raise InvalidRequest(
                f"Missing required parameter: 'tool_outputs[{i}].tool_call_id'.",
                param=f"tool_outputs[{i}].tool_call_id",
            )
        if item.tool_call_id not in pending:
            raise InvalidRequest(
                f"No tool call found with id '{item.tool_call_id}'.",
                param=f"tool_outputs[{i}].tool_call_id",
            )
        if item.tool_call_id in outputs:
            raise InvalidRequest(
                f"Duplicate tool output for call '{item.tool_call_id}'.",
                param=f"tool_outputs[{i}].tool_call_id",
            )
        outputs[item.tool_call_id] = item.output or ""
    missing = [call_id for call_id in pending if call_id not in outputs]
    if missing:
        raise InvalidRequest(
            f"Expected tool outputs for call_ids {pending}, got {list(outputs)}.",
            param="tool_outputs",
        )
    step = await session.scalar(
        select(RunStep)
        .where(RunStep.run_id == row.id, RunStep.type == "tool_calls")
        .order_by(RunStep.seq.desc())
        .limit(1)
    )
    if step is None:
        raise InvalidRequest("The run has no tool calls waiting for outputs.", param="run_id")
    details = dict(step.step_details)
    calls = []
    for call in details.get("tool_calls", []):
        if call.get("type") != "function":
            calls.append(call)  # answered by the service itself (code_interpreter)
            continue
        function = {**call["function"], "output": outputs.get(call["id"])}
        calls.append({**call, "function": function})
    details["tool_calls"] = calls
    step.step_details = details
    step.status = "completed"
    step.completed_at = now()
    row.status = "queued"
    row.required_action = None
    row.worker_id = owner
    row.lease_expires_at = time.time() + lease_seconds if owner else None
    await session.flush()
    return row, step
