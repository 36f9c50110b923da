"""Structured outputs through sovereign in front of an OpenAI-compatible upstream: answers
are validated against the requested schema, retried once, then a clear 502."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.sovereign import Sovereign, run_sovereign
from tests.fakes.sse import sse_data

pytestmark = pytest.mark.timeout(60)

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "person", "schema": PERSON, "strict": True},
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCRIPT: list[dict[str, Any]] = [
    {"match": "[valid]", "text": '{"name": "Ada", "age": 36}', "chunks": 3, "repeat": True},
    {"match": "[not-json]", "text": "Ada is 36 years old.", "repeat": True},
    {"match": "[wrong-shape]", "text": '{"name": "Ada", "age": "old"}', "repeat": True},
    {"match": "[second-try]", "text": "sorry, not JSON"},
    {"match": "[second-try]", "text": '{"name": "Bob", "age": 7}'},
    {"match": "[array]", "text": "[1, 2]", "repeat": True},
    {"match": "[bad-args]", "tool_calls": [{"name": "get_weather", "arguments": '{"town": 1}'}]},
    {"match": "[bad-args]", "tool_calls": [{"name": "get_weather", "arguments": "{oops"}]},
    {
        "match": "[good-args]",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Bern"}}],
    },
]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Sovereign]]:
    with run_openai_upstream({"responses": SCRIPT, "models": ["fake-model"]}) as up:
        config = {"backends": {"local": {"type": "openai", "url": up.base_url}}}
        with run_sovereign(config=config) as sovereign:
            yield up, sovereign


def ask(case: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": f"who {case}"}]
    return {"model": "fake-model", "messages": messages, "stream": stream, **extra}


def asked(up: Any, case: str) -> int:
    return sum(1 for r in up.chat_requests() if case in json.dumps(r["body"]["messages"]))


def test_a_valid_answer_passes(client: httpx.Client, stack: tuple[Any, Sovereign]) -> None:
    reply = client.post("/chat/completions", json=ask("[valid]", response_format=FORMAT))
    assert reply.status_code == 200
    assert json.loads(reply.json()["choices"][0]["message"]["content"]) == {
        "name": "Ada",
        "age": 36,
    }
    sent = next(r["body"] for r in stack[0].chat_requests() if "[valid]" in json.dumps(r["body"]))
    assert sent["response_format"] == FORMAT  # the backend is asked for the schema


@pytest.mark.parametrize("case", ["[not-json]", "[wrong-shape]"])
@pytest.mark.parametrize("stream", [False, True])
def test_an_invalid_answer_is_retried_once_then_a_clear_error(
    client: httpx.Client, stack: tuple[Any, Sovereign], case: str, stream: bool
) -> None:
    before = asked(stack[0], case)
    reply = client.post("/chat/completions", json=ask(case, stream, response_format=FORMAT))
    assert reply.status_code == 502
    error = reply.json()["error"]
    assert error["code"] == "structured_output_invalid"
    assert "2 attempts" in error["message"]
    assert asked(stack[0], case) - before == 2


def test_a_second_attempt_can_succeed(client: httpx.Client) -> None:
    reply = client.post("/chat/completions", json=ask("[second-try]", True, response_format=FORMAT))
    assert reply.status_code == 200
    *chunks, done = sse_data(reply.text)
    assert done == "[DONE]"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert json.loads(text) == {"name": "Bob", "age": 7}


def test_json_object_must_be_an_object(client: httpx.Client) -> None:
    body = ask("[array]", response_format={"type": "json_object"})
    assert client.post("/chat/completions", json=body).status_code == 502


def test_strict_tool_arguments_are_checked(client: httpx.Client) -> None:
    bad = client.post("/chat/completions", json=ask("[bad-args]", tools=[WEATHER]))
    assert bad.status_code == 502 and "get_weather" in bad.json()["error"]["message"]
    good = client.post("/chat/completions", json=ask("[good-args]", tools=[WEATHER]))
    call = good.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Bern"}


def test_an_invalid_schema_is_a_400(client: httpx.Client) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}}
    reply = client.post("/chat/completions", json=ask("[valid]", response_format=fmt))
    assert reply.status_code == 400


def test_the_sdk_sees_the_error(stack: tuple[Any, Sovereign]) -> None:
    sdk = openai.OpenAI(base_url=stack[1].base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "who [not-json]"}],
            response_format=FORMAT,
        )
    assert caught.value.status_code == 502
