"""Sovereign in front of a scripted Ollama (native API): translation, normalisation, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.ollama_upstream import run_ollama_upstream
from tests.fakes.sovereign import Sovereign, run_sovereign
from tests.fakes.sse import sse_data

pytestmark = pytest.mark.timeout(60)

MODEL = "qwen2.5-coder:7b"
SCRIPT = {
    "models": [MODEL, "nomic-embed-text"],
    "responses": [
        {"match": "[json]", "text": '{"greeting": "Bonjour"}', "chunks": 3, "repeat": True},
        {"match": "[text]", "text": "Bonjour tout le monde", "chunks": 5, "repeat": True},
        {
            "match": "[tools]",
            "text": "",
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_time", "arguments": {"tz": "CET"}},
            ],
            "repeat": True,
        },
        {"match": "[length]", "text": "cut", "finish_reason": "length", "repeat": True},
        {"match": "[truncated]", "text": "abcd", "chunks": 4, "truncate_after": 2, "repeat": True},
        {
            "match": "[mid-error]",
            "text": "abcd",
            "chunks": 4,
            "error_after": 2,
            "error": {"message": "llama runner process has terminated"},
            "repeat": True,
        },
        {"match": "[malformed]", "text": "abcd", "chunks": 4, "malformed_after": 1, "repeat": True},
        {"match": "[slow-answer]", "text": "late", "delay": 5, "repeat": True},
        {"match": "[slowish]", "text": "worth the wait", "first_token_delay": 1.0, "repeat": True},
        {
            "match": "[fails-late]",
            "stall": {"after_chunks": 0, "seconds": 1.0},
            "error_after": 0,
            "error": {"message": "out of memory while loading the model"},
            "repeat": True,
        },
        {"match": "[slow-first]", "text": "late", "first_token_delay": 3, "repeat": True},
    ],
}


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[Any, Sovereign]]:
    with run_ollama_upstream(SCRIPT) as up:
        config = {
            "backends": {
                "ollama": {"type": "ollama", "url": up.url, "keep_alive": "10m", "num_ctx": 8192}
            },
            "aliases": {"gpt-4o": MODEL},
            "timeouts": {"first_token": 5, "idle": 2, "hold_headers": 0.3, "heartbeat": 0.2},
        }
        with run_sovereign(config=config) as sovereign:
            yield up, sovereign


def chat(case: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": f"hi {case}"}],
        "stream": stream,
        **extra,
    }


def stream(client: httpx.Client, case: str, **extra: Any) -> list[Any]:
    response = client.post("/chat/completions", json=chat(case, True, **extra))
    assert response.status_code == 200, response.text
    return sse_data(response.text)


def test_streamed_text(client: httpx.Client) -> None:
    items = stream(client, "[text]", stream_options={"include_usage": True})
    chunks = [i for i in items if isinstance(i, dict)]
    assert items[-1] == "[DONE]" and len({c["id"] for c in chunks}) == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert chunks[0]["model"] == MODEL


def test_non_streamed_text(client: httpx.Client) -> None:
    body = client.post("/chat/completions", json=chat("[text]")).json()
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Bonjour tout le monde",
    }
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 5


def test_streamed_tool_calls_get_ids_indices_and_finish_reason(client: httpx.Client) -> None:
    items = stream(client, "[tools]")
    frags = [
        f
        for c in items
        if isinstance(c, dict) and c["choices"]
        for f in c["choices"][0]["delta"].get("tool_calls") or []
    ]
    heads = [f for f in frags if "id" in f]
    assert [(h["index"], h["function"]["name"]) for h in heads] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert all(h["id"].startswith("call_") and h["type"] == "function" for h in heads)
    args = {
        i: "".join(f["function"]["arguments"] for f in frags if f["index"] == i) for i in (0, 1)
    }
    assert json.loads(args[0]) == {"city": "Paris"} and json.loads(args[1]) == {"tz": "CET"}
    # Ollama says done_reason "stop" after tool calls; clients need "tool_calls".
    assert items[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_non_streamed_tool_calls(client: httpx.Client) -> None:
    choice = client.post("/chat/completions", json=chat("[tools]")).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_length_finish(client: httpx.Client) -> None:
    assert stream(client, "[length]")[-2]["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("[truncated]", "ended the stream early"),
        ("[mid-error]", "llama runner process has terminated"),
        ("[malformed]", "malformed"),
    ],
)
def test_broken_ollama_streams(client: httpx.Client, case: str, words: str) -> None:
    items = stream(client, case)
    assert "[DONE]" not in items and words in items[-1]["error"]["message"]


@pytest.mark.parametrize("streamed", [False, True])
def test_model_not_pulled_is_404_naming_the_pull(client: httpx.Client, streamed: bool) -> None:
    body = {**chat("[text]", streamed), "model": "llama3.2:1b"}
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "llama3.2:1b" in error["message"] and "ollama pull llama3.2:1b" in error["message"]


def test_request_translated_to_native_api(stack: tuple[Any, Sovereign]) -> None:
    up, sovereign = stack
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    messages = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this [text] translate-me"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "-3 C"},
        {"role": "user", "content": "and now? [json] translate-me"},
    ]
    body = {
        "model": "gpt-4o",
        "messages": messages,
        "stream": True,
        "temperature": 0.1,
        "max_tokens": 64,
        "stop": "###",
        "seed": 7,
        "tools": tools,
        "response_format": {"type": "json_object"},
    }
    assert httpx.post(sovereign.base_url + "/chat/completions", json=body).status_code == 200
    sent = [r for r in up.chat_requests() if "translate-me" in json.dumps(r["body"])][-1]["body"]
    # A structured answer (response_format) is generated whole and checked before it streams.
    assert sent["model"] == MODEL and sent["stream"] is False
    assert sent["keep_alive"] == "10m"
    assert sent["options"] == {
        "temperature": 0.1,
        "seed": 7,
        "num_predict": 64,
        "stop": ["###"],
        "num_ctx": 8192,
    }
    assert sent["tools"] == tools and sent["format"] == "json"
    system, user, assistant, tool, _ = sent["messages"]
    assert system == {"role": "system", "content": "Be brief."}
    assert user["images"] == ["iVBORw0KGgo="] and "translate-me" in user["content"]
    assert assistant["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    ]
    assert tool == {"role": "tool", "content": "-3 C", "tool_name": "get_weather"}


def test_models_listed_from_tags_with_aliases(client: httpx.Client) -> None:
    ids = [m["id"] for m in client.get("/models").json()["data"]]
    assert ids == [MODEL, "nomic-embed-text", "gpt-4o"]


def test_embeddings_through_native_api(client: httpx.Client) -> None:
    body = client.post(
        "/embeddings", json={"model": "nomic-embed-text", "input": ["one", "two"]}
    ).json()
    assert body["object"] == "list" and len(body["data"]) == 2
    assert len(body["data"][1]["embedding"]) == 8
    missing = client.post("/embeddings", json={"model": "absent", "input": "x"})
    assert missing.status_code == 404 and "ollama pull absent" in missing.json()["error"]["message"]


def test_health_reports_backend(stack: tuple[Any, Sovereign]) -> None:
    health = httpx.get(stack[1].url + "/health").json()
    assert health["status"] == "ok" and health["version"]
    backend = health["backends"]["ollama"]
    assert backend["reachable"] is True and backend["latency_ms"] >= 0


@pytest.mark.parametrize(("case", "streamed"), [("[slow-answer]", False), ("[slow-first]", True)])
def test_client_leaving_before_the_first_token_cancels_upstream(
    stack: tuple[Any, Sovereign], case: str, streamed: bool
) -> None:
    """Before a response starts (a long non-streamed answer, a slow first token)."""
    up, sovereign = stack
    marker = f"{case} leave-{streamed}"
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            sovereign.base_url + "/chat/completions", json=chat(marker, streamed), timeout=0.1
        )

    # "cancelled" is only recorded when the upstream was cut off before it answered.
    assert up.cancelled(marker, timeout=2.5)


def test_slow_first_token_gets_heartbeats_then_the_answer(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat("[slowish]", True))
    assert response.status_code == 200
    assert response.text.startswith(": waiting for the first token\n\n")
    items = sse_data(response.text)
    text = "".join(
        i["choices"][0]["delta"].get("content") or "" for i in items[:-1] if i["choices"]
    )
    assert text == "worth the wait" and items[-1] == "[DONE]"


def test_sdk_skips_heartbeats(stack: tuple[Any, Sovereign]) -> None:
    sdk = openai.OpenAI(base_url=stack[1].base_url, api_key="unused", timeout=20, max_retries=0)
    stream = sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "[slowish]"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "worth the wait"
    )


def test_failure_after_the_stream_started_is_an_error_event(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=chat("[fails-late]", True))
    assert response.status_code == 200  # the headers had gone; the error is in the stream
    items = sse_data(response.text)
    assert "out of memory while loading" in items[-1]["error"]["message"]
    assert "[DONE]" not in items


def test_client_leaving_during_heartbeats_cancels_upstream(stack: tuple[Any, Sovereign]) -> None:
    up, sovereign = stack
    body = chat("[slow-first] leave-during-heartbeats", True)
    with (
        httpx.Client(timeout=10) as c,
        c.stream("POST", sovereign.base_url + "/chat/completions", json=body) as response,
    ):
        first_line = next(response.iter_lines())
        assert first_line.startswith(": waiting")

    assert up.cancelled("leave-during-heartbeats", timeout=2.5)  # the answer was 3 s away
