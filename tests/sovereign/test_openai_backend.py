"""Sovereign in front of a scripted OpenAI-compatible upstream: normalisation and failures."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.sovereign import Sovereign, run_sovereign
from tests.fakes.sse import sse_data

pytestmark = pytest.mark.timeout(60)

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}, "chunks": 4}
CLOCK = {"name": "get_time", "arguments": {"tz": "Europe/Paris"}, "chunks": 2}

SCRIPT: list[dict[str, Any]] = [
    {"match": "[text]", "text": "The quick brown fox", "chunks": 4, "repeat": True},
    {"match": "[vary-ids]", "text": "abc", "chunks": 3, "vary_ids": True, "repeat": True},
    {"match": "[tools]", "tool_calls": [WEATHER, CLOCK], "repeat": True},
    {
        "match": "[tools-bare]",
        "tool_calls": [{**WEATHER, "id": None}, {**CLOCK, "id": None}],
        "omit_index": True,
        "finish_reason": "stop",
        "repeat": True,
    },
    {"match": "[usage-final]", "text": "hi", "usage_in_final_chunk": True, "repeat": True},
    {"match": "[no-usage]", "text": "a b c", "chunks": 3, "no_usage": True, "repeat": True},
    {"match": "[no-done]", "text": "done anyway", "omit_done": True, "repeat": True},
    {"match": "[truncated]", "text": "abcdef", "chunks": 6, "truncate_after": 3, "repeat": True},
    {"match": "[malformed]", "text": "abcdef", "chunks": 6, "malformed_after": 2, "repeat": True},
    {"match": "[drop]", "text": "abcdef", "chunks": 6, "drop_after": 2, "repeat": True},
    {
        "match": "[mid-error]",
        "text": "abcdef",
        "chunks": 6,
        "error_after": 2,
        "error": {"message": "the GPU caught fire", "type": "server_error"},
        "repeat": True,
    },
    {
        "match": "[stall]",
        "text": "abcdef",
        "chunks": 6,
        "stall": {"after_chunks": 2, "seconds": 5},
        "repeat": True,
    },
    {"match": "[slow-first]", "text": "late", "first_token_delay": 5, "repeat": True},
    {"match": "[slow-answer]", "text": "late", "delay": 5, "repeat": True},
    {"match": "[long]", "text": "x" * 400, "chunks": 400, "tokens_per_s": 100, "repeat": True},
    {
        "match": "[500]",
        "status": 500,
        "error": {"message": "out of memory", "type": "server_error"},
        "repeat": True,
    },
    {
        "match": "[400]",
        "status": 400,
        "error": {"message": "context too long", "type": "invalid_request_error"},
        "repeat": True,
    },
    {"match": "[429]", "status": 429, "repeat": True},
]

CONFIG = {
    "timeouts": {"connect": 2, "first_token": 1.0, "idle": 0.6, "response": 1.0},
    "aliases": {"gpt-4o": "fake-model"},
}


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Sovereign]]:
    with run_openai_upstream({"responses": SCRIPT, "models": ["fake-model"]}) as up:
        config = {**CONFIG, "backends": {"local": {"type": "openai", "url": up.base_url}}}
        with run_sovereign(config=config) as sovereign:
            yield up, sovereign


def chat(case: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"hi {case}"}]}
    return {**body, "stream": stream, **extra}


def stream_items(client: httpx.Client, case: str, **extra: Any) -> list[Any]:
    response = client.post("/chat/completions", json=chat(case, True, **extra))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return sse_data(response.text)


def chunks_of(items: list[Any]) -> list[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict) and "choices" in i]


def assert_clean_ending(items: list[Any], finish: str) -> None:
    chunks = chunks_of(items)
    assert items[-1] == "[DONE]"
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == finish and all(f is None for f in finishes[:-1])


def test_non_streamed_text(client: httpx.Client) -> None:
    body = client.post("/chat/completions", json=chat("[text]")).json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "The quick brown fox"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 4


def test_streamed_text_is_normalised(client: httpx.Client) -> None:
    items = stream_items(client, "[text]")
    assert_clean_ending(items, "stop")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks_of(items))
    assert text == "The quick brown fox"
    assert not any("usage" in c for c in chunks_of(items))  # not asked for


def test_usage_chunk_when_asked(client: httpx.Client) -> None:
    items = stream_items(client, "[text]", stream_options={"include_usage": True})
    assert_clean_ending(items, "stop")
    *others, usage_chunk = chunks_of(items)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in others)


def test_one_id_when_upstream_varies_it(client: httpx.Client) -> None:
    assert_clean_ending(stream_items(client, "[vary-ids]"), "stop")


def _calls(items: list[Any]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks_of(items):
        for frag in chunk["choices"][0]["delta"].get("tool_calls") or []:
            call = calls.setdefault(frag["index"], {"fragments": 0, "arguments": ""})
            call["fragments"] += 1
            if "id" in frag:
                assert "id" not in call, "an id only on a call's first fragment"
                call["id"] = frag["id"]
                call["name"] = frag["function"]["name"]
                assert frag["type"] == "function"
            call["arguments"] += frag["function"].get("arguments", "")
    return calls


@pytest.mark.parametrize("case", ["[tools]", "[tools-bare]"])
def test_parallel_tool_call_deltas(client: httpx.Client, case: str) -> None:
    items = stream_items(client, case)
    assert_clean_ending(items, "tool_calls")
    calls = _calls(items)
    assert sorted(calls) == [0, 1]
    assert calls[0]["name"] == "get_weather" and calls[1]["name"] == "get_time"
    assert json.loads(calls[0]["arguments"]) == WEATHER["arguments"]
    assert json.loads(calls[1]["arguments"]) == CLOCK["arguments"]
    assert calls[0]["fragments"] >= 4  # argument fragments are relayed, not buffered
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert calls[0]["id"] != calls[1]["id"]


def test_non_streamed_tool_calls(client: httpx.Client) -> None:
    choice = client.post("/chat/completions", json=chat("[tools-bare]")).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == [
        "get_weather",
        "get_time",
    ]


def test_usage_riding_on_final_chunk_is_split_out(client: httpx.Client) -> None:
    items = stream_items(client, "[usage-final]", stream_options={"include_usage": True})
    assert_clean_ending(items, "stop")
    assert chunks_of(items)[-1]["choices"] == [] and chunks_of(items)[-1]["usage"]


def test_usage_estimated_when_upstream_has_none(client: httpx.Client) -> None:
    items = stream_items(client, "[no-usage]", stream_options={"include_usage": True})
    assert chunks_of(items)[-1]["usage"]["completion_tokens"] == 3


def test_finished_stream_without_done_is_completed(client: httpx.Client) -> None:
    assert_clean_ending(stream_items(client, "[no-done]"), "stop")


@pytest.mark.parametrize(
    ("case", "code", "words"),
    [
        ("[truncated]", "upstream_stream_truncated", "ended the stream early"),
        ("[malformed]", "upstream_malformed_chunk", "malformed"),
        ("[drop]", "upstream_disconnected", "dropped the connection"),
        ("[mid-error]", "upstream_stream_error", "the GPU caught fire"),
        ("[stall]", "upstream_timeout", "idle timeout"),
    ],
)
def test_broken_streams_end_in_an_error_event(
    client: httpx.Client, case: str, code: str, words: str
) -> None:
    start = time.monotonic()
    items = stream_items(client, case)
    assert time.monotonic() - start < 4  # a stall is cut at the idle timeout, not waited out
    assert "[DONE]" not in items
    error = items[-1]["error"]
    assert error["code"] == code and words in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_first_token_timeout_is_504(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat("[slow-first]", True))
    assert response.status_code == 504
    assert "first-token timeout" in response.json()["error"]["message"]


def test_response_timeout_is_504(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat("[slow-answer]"))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


@pytest.mark.parametrize(("case", "status"), [("[500]", 502), ("[400]", 400), ("[429]", 429)])
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_http_errors(client: httpx.Client, case: str, status: int, stream: bool) -> None:
    response = client.post("/chat/completions", json=chat(case, stream))
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if case == "[500]":
        assert "out of memory" in error["message"] and error["type"] == "server_error"


def test_request_forwarded_with_alias_resolved(stack: tuple[Any, Sovereign]) -> None:
    up, sovereign = stack
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = chat("[text] forwarded", True, temperature=0.2, tools=tools, user="u1")
    httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=10)
    sent = [r for r in up.chat_requests() if "forwarded" in json.dumps(r["body"])][-1]["body"]
    assert sent["model"] == "fake-model"  # gpt-4o is an alias
    assert sent["temperature"] == 0.2 and sent["tools"] == tools and sent["user"] == "u1"
    assert sent["messages"] == body["messages"]
    assert sent["stream_options"] == {"include_usage": True}


def test_client_disconnect_cancels_upstream(stack: tuple[Any, Sovereign]) -> None:
    up, sovereign = stack
    body = chat("[long] disconnect-me", True)
    with (
        httpx.Client(timeout=10) as c,
        c.stream("POST", sovereign.base_url + "/chat/completions", json=body) as response,
    ):
        for line in response.iter_lines():
            if "content" in line:
                break  # hang up after the first token of a 4 s answer

    # The answer would take 4 s to complete.
    assert up.cancelled("disconnect-me", timeout=3), up.requests()[-1]


def test_bad_requests_are_openai_shaped(client: httpx.Client) -> None:
    hi = [{"role": "user", "content": "hi"}]
    for body in ({"model": "m"}, {"messages": []}, {"model": "m", "messages": hi, "n": 2}):
        response = client.post("/chat/completions", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
    response = client.post("/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert client.get("/nowhere").status_code == 404


def test_models_aggregated_with_aliases(client: httpx.Client) -> None:
    ids = [m["id"] for m in client.get("/models").json()["data"]]
    assert ids == ["fake-model", "gpt-4o"]
    assert client.get("/models/gpt-4o").json()["owned_by"] == "local"
    assert client.get("/models/nope").status_code == 404


def test_embeddings_pass_through(client: httpx.Client) -> None:
    body = client.post("/embeddings", json={"model": "gpt-4o", "input": ["a", "b"]}).json()
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 8
