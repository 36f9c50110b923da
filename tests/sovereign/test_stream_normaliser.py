"""The stream normaliser on its own: tool-call fragment shapes that real servers send."""

from __future__ import annotations

import json
from typing import Any

from services.sovereign.events import ContentDelta, Event, Finish, ToolCallDelta, Usage
from services.sovereign.normalise import StreamNormaliser, normalise_completion
from tests.fakes.sse import sse_data


def run(events: list[Event], include_usage: bool = False) -> list[Any]:
    normaliser = StreamNormaliser("m", include_usage)
    frames = b"".join(f for e in events if (f := normaliser.feed(e)) is not None)
    frames += normaliser.end()
    return sse_data(frames.decode())


def calls(items: list[Any]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for item in items:
        if not isinstance(item, dict) or not item["choices"]:
            continue
        for frag in item["choices"][0]["delta"].get("tool_calls") or []:
            call = found.setdefault(frag["index"], {"arguments": ""})
            if "id" in frag:
                assert "id" not in call
                call.update(id=frag["id"], name=frag["function"]["name"])
            call["arguments"] += frag["function"].get("arguments", "")
    return found


def test_repeated_ids_without_index_stay_one_call_each() -> None:
    items = run(
        [
            ToolCallDelta(None, "a", "f", '{"x"'),
            ToolCallDelta(None, "a", None, ": 1}"),
            ToolCallDelta(None, "b", "g", "{}"),
            ToolCallDelta(None, "a", None, ""),
        ]
    )
    assert calls(items) == {
        0: {"id": "a", "name": "f", "arguments": '{"x": 1}'},
        1: {"id": "b", "name": "g", "arguments": "{}"},
    }
    assert items[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_interleaved_parallel_fragments_keep_their_index() -> None:
    items = run(
        [
            ToolCallDelta(0, "a", "f", ""),
            ToolCallDelta(1, "b", "g", ""),
            ToolCallDelta(1, None, None, '{"y":'),
            ToolCallDelta(0, None, None, '{"x":'),
            ToolCallDelta(0, None, None, "1}"),
            ToolCallDelta(1, None, None, "2}"),
            Finish("stop"),
        ]
    )
    found = calls(items)
    assert found[0]["arguments"] == '{"x":1}' and found[1]["arguments"] == '{"y":2}'


def test_missing_ids_are_generated_and_upstream_indices_renumbered() -> None:
    found = calls(run([ToolCallDelta(3, None, "f", "{}"), ToolCallDelta(7, None, "g", "{}")]))
    assert sorted(found) == [0, 1]
    assert all(c["id"].startswith("call_") for c in found.values())


def test_text_only_role_first_usage_last() -> None:
    items = run(
        [ContentDelta(""), ContentDelta("hi"), Usage(3, 1), Finish("length")], include_usage=True
    )
    first, final, usage, done = items
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "hi"}
    assert first["usage"] is None
    assert final["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 4
    assert done == "[DONE]"
    assert len({i["id"] for i in items[:-1]}) == 1


def test_empty_stream_still_ends_properly() -> None:
    items = run([])
    assert items[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert items[1]["choices"][0]["finish_reason"] == "stop" and items[2] == "[DONE]"


def test_non_streamed_body_is_fixed_up() -> None:
    body = normalise_completion(
        {
            "choices": [
                {
                    "message": {
                        "content": None,
                        "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
                    },
                    "finish_reason": "stop",
                }
            ]
        },
        "m",
    )
    choice = body["choices"][0]
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"a": 1}
