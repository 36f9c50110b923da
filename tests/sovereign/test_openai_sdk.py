"""The official openai SDK as the client of sovereign: streaming, tool calls, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.ollama_upstream import run_ollama_upstream
from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.sovereign import run_sovereign

pytestmark = pytest.mark.timeout(60)

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris"}, "chunks": 5},
    {"name": "get_weather", "arguments": {"city": "Rome"}, "chunks": 5},
]


@pytest.fixture(scope="module", params=["openai", "ollama"])
def client(request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    """An SDK client on sovereign, in front of each kind of scripted upstream."""
    script = {
        "models": ["qwen2.5-coder:7b"],
        "responses": [
            {"match": "weather", "tool_calls": CALLS, "repeat": True},
            {"match": "broken", "text": "abcdef", "chunks": 6, "truncate_after": 3, "repeat": True},
            {"text": "Hello from a local model", "chunks": 6, "repeat": True},
        ],
    }
    run = run_openai_upstream if request.param == "openai" else run_ollama_upstream
    with run(script) as up:
        config = {
            "backends": {"local": {"type": request.param, "url": up.url}},
            "aliases": {"gpt-4o": "qwen2.5-coder:7b"},
        }
        with run_sovereign(config=config, env={"SOVEREIGN_API_KEY": "k"}) as sv:
            yield openai.OpenAI(base_url=sv.base_url, api_key="k", timeout=20, max_retries=0)


def test_sdk_streams_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from a local model"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_sdk_stream_helper_accumulates_parallel_tool_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Paris and Rome?"}],
        tools=TOOLS,
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert len({c.id for c in calls}) == 2


def test_sdk_non_streamed_tool_calls(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_sdk_raises_on_broken_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "broken"}], stream=True
    )
    with pytest.raises(openai.APIError, match="ended the stream early"):
        list(stream)


def test_sdk_errors_and_models(client: openai.OpenAI) -> None:
    assert "gpt-4o" in [m.id for m in client.models.list()]
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="wrong").models.list()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=[])


def test_sdk_embeddings(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; both backends must honour that.
    result = client.embeddings.create(model="qwen2.5-coder:7b", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
