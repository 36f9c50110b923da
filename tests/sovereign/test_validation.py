"""Sovereign refuses what OpenAI refuses, as a 400 in OpenAI's shape, before any backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.process import FakeUpstream
from tests.fakes.sovereign import run_sovereign

pytestmark = pytest.mark.timeout(60)

USER = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}

BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown role",
        {"messages": [{"role": "robot", "content": "hi"}]},
        "messages[0].role",
        "invalid_value",
    ),
    (
        "no role",
        {"messages": [{"content": "hi"}]},
        "messages[0].role",
        "missing_required_parameter",
    ),
    (
        "no content",
        {"messages": [{"role": "user"}]},
        "messages[0].content",
        "missing_required_parameter",
    ),
    ("no messages", {"messages": []}, "messages", "empty_array"),
    (
        "image in a system message",
        {
            "messages": [
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                *USER,
            ]
        },
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        "tool result without its call id",
        {"messages": [*USER, {"role": "tool", "content": "42"}]},
        "messages[1].tool_call_id",
        "missing_required_parameter",
    ),
    (
        "tool call without a name",
        {
            "messages": [
                *USER,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"arguments": "{}"}}
                    ],
                },
            ]
        },
        "messages[1].tool_calls[0].function.name",
        "missing_required_parameter",
    ),
    (
        "invalid tool_choice",
        {"tools": [TOOL], "tool_choice": "sometimes"},
        "tool_choice",
        "invalid_value",
    ),
    ("tool_choice of a number", {"tools": [TOOL], "tool_choice": 3}, "tool_choice", "invalid_type"),
    ("required without tools", {"tool_choice": "required"}, "tool_choice", "invalid_value"),
    (
        "named function without tools",
        {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        "tool_choice",
        "invalid_value",
    ),
    (
        "named function that is not a tool",
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
        "tool_choice",
        "invalid_value",
    ),
    (
        "tool of an unknown type",
        {"tools": [{"type": "retrieval"}]},
        "tools[0].type",
        "invalid_value",
    ),
    (
        "tool without a type",
        {"tools": [{"function": TOOL["function"]}]},
        "tools[0].type",
        "missing_required_parameter",
    ),
    (
        "function tool without its function",
        {"tools": [{"type": "function"}]},
        "tools[0].function",
        "missing_required_parameter",
    ),
    (
        "function name with a space",
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "tools[0].function.name",
        "invalid_value",
    ),
    (
        "parameters that are not an object",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
        "tools[0].function.parameters",
        "invalid_type",
    ),
    ("tools that are not a list", {"tools": TOOL}, "tools", "invalid_type"),
    ("empty tools", {"tools": []}, "tools", "empty_array"),
]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeUpstream, openai.OpenAI]]:
    with run_openai_upstream({"responses": [{"text": "fine", "repeat": True}]}) as up:
        config = {"backends": {"local": {"type": "openai", "url": up.url}}}
        with run_sovereign(config=config) as sv:
            yield up, openai.OpenAI(base_url=sv.base_url, api_key="k", timeout=20, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("case", "fields", "param", "code"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_are_refused_before_the_backend(
    served: tuple[FakeUpstream, openai.OpenAI],
    case: str,
    fields: dict[str, Any],
    param: str,
    code: str,
    stream: bool,
) -> None:
    up, client = served
    before = len(up.chat_requests())
    body: dict[str, Any] = {"model": "fake-model", "messages": USER, **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**body, stream=stream)
    error = caught.value.body
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert len(up.chat_requests()) == before, "the backend was called"


def test_a_full_tool_conversation_is_accepted(served: tuple[FakeUpstream, openai.OpenAI]) -> None:
    up, client = served
    messages: list[Any] = [
        {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    for choice in (
        "auto",
        "none",
        "required",
        {"type": "function", "function": {"name": "get_weather"}},
    ):
        answer = client.chat.completions.create(
            model="fake-model", messages=messages, tools=[TOOL], tool_choice=choice
        )
        assert answer.choices[0].message.content == "fine"
    assert up.chat_requests()[-1]["body"]["messages"] == messages  # forwarded as sent
