"""Calls a run answers itself: ``code_interpreter`` (the sandbox) and ``file_search`` (the
run's vector stores), offered to the model as functions. Their outputs are streamed as step
deltas and given to the model, which then goes on; the caller answers only its own
functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..clock import now
from ..domain.runs import end_step, step_object
from ..tables import Run
from . import code_interpreter, file_search
from .objects import add_usage

if TYPE_CHECKING:
    from .execution import RunExecution

__all__ = ["MAX_ROUNDS", "answer_calls", "complete_tool_step", "served_names"]

# Rounds of model → served calls → model within one run, before the run gives up.
MAX_ROUNDS = code_interpreter.MAX_ROUNDS


def served_names(execution: RunExecution) -> set[str]:
    """The function names this run answers itself."""
    names = set()
    if execution.code_interpreter is not None and code_interpreter.enabled(
        execution.run.tools if execution.run else None
    ):
        names.add(code_interpreter.NAME)
    if execution.search is not None:
        names.add(file_search.NAME)
    return names


async def complete_tool_step(execution: RunExecution) -> None:
    """The turn's tool calls are all answered: end its step, start a fresh turn."""
    turn = execution.turn
    assert turn.tool_step is not None
    async with execution.db.write() as session:
        step = await session.merge(turn.tool_step)
        step.step_details = {
            "type": "tool_calls",
            "tool_calls": [c.as_object(with_output=True) for c in turn.calls.calls],
        }
        step.usage = add_usage(None, turn.usage)
        end_step(step, "completed", now())
        run = await session.scalar(select(Run).where(Run.id == execution.run_id))
        if run is not None:
            run.usage = add_usage(run.usage, turn.usage)
    execution.emit("thread.run.step.completed", step_object(step))
    execution.turn = type(turn)(placeholder=turn.placeholder)


async def _answer(execution: RunExecution, position: int, call: Any) -> str:
    """Answer one served call and stream what it produced; the text the model reads."""
    if call.name == file_search.NAME:
        assert execution.file_search is not None and execution.search is not None
        text = await execution.file_search.answer(execution.search, call)
        details: dict[str, Any] = call.details or {}
        tool_delta = {"index": position, "type": file_search.NAME, file_search.NAME: details}
    else:
        assert execution.code_interpreter is not None
        streamed = call.streamed
        outputs, text = await execution.code_interpreter.run(execution, call)
        details = {"outputs": [{"index": i, **o} for i, o in enumerate(outputs)]}
        if call.streamed.startswith(streamed) and len(call.streamed) > len(streamed):
            # Code the stream could not show as it came (not JSON the way it was cut).
            details["input"] = call.streamed[len(streamed) :]
        tool_delta = {
            "index": position,
            "type": code_interpreter.NAME,
            code_interpreter.NAME: details,
        }
    step = execution.turn.tool_step
    assert step is not None
    execution.emit(
        "thread.run.step.delta",
        {
            "id": step.id,
            "object": "thread.run.step.delta",
            "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_delta]}},
        },
    )
    return text


async def answer_calls(execution: RunExecution, body: dict[str, Any]) -> dict[str, Any] | None:
    """Answer the turn's served calls; the next turn's request, or None when the run must
    wait for function outputs too (then requires_action lists only those)."""
    turn = execution.turn
    served = served_names(execution)
    calls = turn.calls.calls
    results: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        if call.name in served:
            text = await _answer(execution, position, call)
            results.append({"role": "tool", "tool_call_id": call.id, "content": text})
    if any(c.type == "function" for c in calls):
        return None
    await complete_tool_step(execution)
    chat_calls = [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]
    text = "".join(turn.text) or None
    messages = [*body["messages"], {"role": "assistant", "content": text, "tool_calls": chat_calls}]
    following = {**body, "messages": messages + results}
    if following.get("tool_choice") not in (None, "none", "auto"):
        following["tool_choice"] = "auto"  # a forced call is made once, then the model answers
    if "max_tokens" in following and turn.usage:
        spent = int(turn.usage.get("completion_tokens") or 0)
        following["max_tokens"] = max(1, following["max_tokens"] - spent)
    return following
