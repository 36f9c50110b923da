"""The real embedded runtime (llama.cpp, bundled gemma-3-270m) answering through sovereign."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.sovereign import Sovereign, run_embedded, run_sovereign
from tests.fakes.sse import sse_data

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama_cpp is not importable: install the extra with pip install -e '.[embedded]'",
    ),
]


@pytest.fixture(scope="module")
def embedded() -> Iterator[Sovereign]:
    with run_embedded() as runtime:
        yield runtime


@pytest.fixture(scope="module")
def sovereign(embedded: Sovereign) -> Iterator[Sovereign]:
    with run_sovereign(env={"SOVEREIGN_BACKEND_URL": embedded.base_url}) as sv:
        yield sv


def test_runtime_serves_openai_api(embedded: Sovereign) -> None:
    assert httpx.get(embedded.url + "/health").json()["status"] == "ok"
    assert httpx.get(embedded.base_url + "/models").json()["data"][0]["id"] == "gemma-3-270m"


def test_real_tokens_non_streamed(sovereign: Sovereign) -> None:
    body = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "What is 2 + 2? Answer in one word."}],
    }
    answer = httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=120).json()
    assert answer["choices"][0]["message"]["content"].strip().rstrip(".") == "4"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] > 0


def test_real_tokens_streamed(sovereign: Sovereign) -> None:
    body = {
        "model": "gemma-3-270m",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    items = sse_data(
        httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=120).text
    )
    assert items[-1] == "[DONE]"
    chunks = [i for i in items if isinstance(i, dict)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "Paris" in text
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_real_tokens_through_the_sdk_bounded(sovereign: Sovereign) -> None:
    client = openai.OpenAI(base_url=sovereign.base_url, api_key="unused", timeout=120)
    stream = client.chat.completions.create(
        model="gemma-3-270m",
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
        stream=True,
        max_tokens=12,
    )
    chunks = list(stream)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_beyond_the_context_is_a_clear_400(sovereign: Sovereign, stream: bool) -> None:
    body = {"messages": [{"role": "user", "content": "word " * 3000}], "stream": stream}
    body["model"] = "gemma-3-270m"
    response = httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=120)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "context" in error["message"] and error["type"] == "invalid_request_error"
