"""Unit tests of the pure parts of run execution: tool-call accumulation, prompts, SSE."""

from __future__ import annotations

from typing import Any

import pytest

from services.assistants.runs.events import EventBus, sse_stream
from services.assistants.runs.prompt import PromptTooLong, build_request
from services.assistants.runs.toolcalls import ToolCalls
from services.assistants.tables import Run


def fragment(index: int | None, **fields: Any) -> dict[str, Any]:
    frag: dict[str, Any] = {"function": {k: v for k, v in fields.items() if k != "id"}}
    if "id" in fields:
        frag["id"] = fields["id"]
    if index is not None:
        frag["index"] = index
    return frag


def test_tool_calls_are_renumbered_from_zero() -> None:
    calls = ToolCalls()
    first = calls.add(fragment(3, id="call_a", name="f", arguments=""))
    calls.add(fragment(3, arguments='{"x":'))
    second = calls.add(fragment(7, id="call_b", name="g", arguments="{}"))
    calls.add(fragment(3, arguments=" 1}"))
    assert (first["index"], second["index"]) == (0, 1)
    assert first["function"] == {"name": "f", "arguments": "", "output": None}
    assert [(c.id, c.name, c.arguments) for c in calls.calls] == [
        ("call_a", "f", '{"x": 1}'),
        ("call_b", "g", "{}"),
    ]


def test_tool_calls_without_index_or_id() -> None:
    calls = ToolCalls()
    for frag in (
        fragment(None, name="f", arguments=""),
        fragment(None, arguments="{}"),
        fragment(None, name="g", arguments="["),
        fragment(None, arguments="]"),
    ):
        calls.add(frag)
    assert [(c.name, c.arguments) for c in calls.calls] == [("f", "{}"), ("g", "[]")]
    assert all(c.id.startswith("call_") for c in calls.calls)


def make_run(**fields: Any) -> Run:
    base: dict[str, Any] = {
        "model": "m",
        "instructions": "sys",
        "tools": [],
        "temperature": 1.0,
        "top_p": 1.0,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": "auto",
        "max_prompt_tokens": None,
    }
    return Run(**{**base, **fields})


def test_auto_truncation_drops_the_oldest_messages_to_fit() -> None:
    thread = [{"role": "user", "content": "x" * 2000} for _ in range(5)]
    thread.append({"role": "user", "content": "last"})
    prompt = build_request(make_run(max_prompt_tokens=600), thread, [], None)
    kept = prompt.body["messages"]
    assert kept[0] == {"role": "system", "content": "sys"}
    assert kept[-1]["content"] == "last" and 2 <= len(kept) < 7
    assert prompt.estimated_tokens <= 600
    with pytest.raises(PromptTooLong):
        build_request(
            make_run(max_prompt_tokens=256), [{"role": "user", "content": "y" * 4000}], [], None
        )


def test_response_format_and_tools_only_when_they_mean_something() -> None:
    body = build_request(make_run(), [{"role": "user", "content": "q"}], [], None).body
    assert "tools" not in body and "response_format" not in body and "max_tokens" not in body
    run = make_run(
        tools=[{"type": "function", "function": {"name": "f"}}, {"type": "file_search"}],
        response_format={"type": "json_object"},
        tool_choice={"type": "file_search"},
    )
    body = build_request(run, [], [], 50).body
    assert body["tools"] == [{"type": "function", "function": {"name": "f"}}]
    assert body["tool_choice"] == "auto"
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_tokens"] == 50


async def test_sse_stream_frames_and_ends_with_done() -> None:
    bus = EventBus()
    sub = bus.subscribe("run_1")
    bus.publish("run_1", "thread.run.in_progress", {"id": "run_1"})
    bus.end("run_1")
    frames = [f async for f in sse_stream(sub, [("thread.run.created", {"id": "run_1"})])]
    assert frames == [
        b'event: thread.run.created\ndata: {"id":"run_1"}\n\n',
        b'event: thread.run.in_progress\ndata: {"id":"run_1"}\n\n',
        b"event: done\ndata: [DONE]\n\n",
    ]
    assert not bus.has_subscribers("run_1")
