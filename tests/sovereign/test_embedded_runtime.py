"""The real embedded runtime (llama.cpp, bundled gemma-3-270m) answering through sovereign."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

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


class _AnyGguf(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.endswith(".gguf")

    __hash__ = str.__hash__


ANY_GGUF = _AnyGguf("*.gguf")


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
    body = {"model": "gemma-3-270m", "messages": [{"role": "wizard", "content": "hi"}]}
    unknown = httpx.post(embedded.base_url + "/chat/completions", json=body, timeout=30)
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "messages[0].role"


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


def test_health_names_the_warmed_up_models(embedded: Sovereign) -> None:
    health = httpx.get(embedded.url + "/health").json()
    assert health["models"]["chat"] == {"id": "gemma-3-270m", "file": ANY_GGUF, "ready": True}
    # The default embedder first, then the one it was distilled from, still selectable.
    assert health["models"]["embedding"]["id"] == "all-minilm-l6-v2-static"
    assert health["models"]["embedding"]["dimensions"] == 256
    embeddings = {m["id"]: (m["dimensions"], m["ready"]) for m in health["models"]["embeddings"]}
    assert embeddings == {"all-minilm-l6-v2-static": (256, True), "all-minilm-l6-v2": (384, True)}
    # MiniLM loads on its first request, not at start.
    assert set(health["warmup_s"]) == {"chat", "all-minilm-l6-v2-static"}
    ids = [m["id"] for m in httpx.get(embedded.base_url + "/models").json()["data"]]
    assert ids == ["gemma-3-270m", "all-minilm-l6-v2-static", "all-minilm-l6-v2"]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


EMBEDDERS = [("all-minilm-l6-v2-static", 256), ("all-minilm-l6-v2", 384), ("all-minilm", 384)]


@pytest.mark.parametrize(("model", "dimensions"), EMBEDDERS)
def test_real_embeddings_through_the_sdk(sovereign: Sovereign, model: str, dimensions: int) -> None:
    client = openai.OpenAI(base_url=sovereign.base_url, api_key="unused", timeout=60)
    texts = [
        "The cat sat on the mat.",
        "A kitten is sitting on a rug.",
        "Quarterly revenue rose eight percent on strong bond trading.",
    ]
    result = client.embeddings.create(model=model, input=texts)  # base64 on the wire
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [dimensions] * 3
    assert all(abs(cosine(v, v) - 1) < 1e-3 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert result.usage.prompt_tokens > 20 and result.model == model
    health = httpx.get(sovereign.url + "/health").json()
    assert health["status"] == "ok" and health["backends"]["default"]["ready"] is True
    listed = {m["id"]: m["ready"] for m in client.models.list().model_dump()["data"]}
    assert listed == {"gemma-3-270m": True, **{name: True for name, _ in EMBEDDERS[:2]}}


@pytest.mark.parametrize("model", ["all-minilm-l6-v2-static", "all-minilm-l6-v2"])
def test_a_long_input_is_embedded_whole_not_cut(sovereign: Sovereign, model: str) -> None:
    client = openai.OpenAI(base_url=sovereign.base_url, api_key="unused", timeout=60)
    head = "The river floods every spring and the farmers plant rice in the wet fields. " * 20
    tail = "The violinist tuned her instrument before the concert in the old opera house. " * 20
    full, first, music = (
        d.embedding
        for d in client.embeddings.create(
            model=model, input=[head + tail, head, "a violin concert"]
        ).data
    )
    # About 600 tokens: a cut at MiniLM's 256-token window would lose the whole tail (it is
    # embedded in windows; the static model has no window).
    assert cosine(full, music) > cosine(first, music) + 0.1
    assert cosine(full, first) < 0.95


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"input": [[101, 2023, 102]]}, 400, "token arrays"),
        ({"input": "x", "dimensions": 128}, 400, "cannot shorten"),
        ({"input": "x", "model": "all-minilm-l6-v2-static", "dimensions": 384}, 400, "256-dim"),
        ({"input": "x", "model": "gemma-3-270m"}, 404, "embeddings come from"),
    ],
)
def test_embeddings_refuse_what_they_cannot_do(
    sovereign: Sovereign, body: dict, status: int, words: str
) -> None:
    request = {"model": "all-minilm-l6-v2", **body}
    response = httpx.post(sovereign.base_url + "/embeddings", json=request, timeout=60)
    assert response.status_code == status and words in response.json()["error"]["message"]


def test_tool_history_is_written_into_the_prompt_not_dropped(sovereign: Sovereign) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "What is the secret code? Use the tool."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "The secret code is 7391."},
        {"role": "user", "content": "What is the secret code?"},
    ]
    body = {"model": "gemma-3-270m", "messages": messages, "max_tokens": 40}
    answer = httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    # Only the tool's result holds the code: the model saw it.
    assert "7391" in answer.json()["choices"][0]["message"]["content"]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body["messages"] = [{"role": "user", "content": [image]}]
    refused = httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=60)
    assert refused.status_code == 400 and "text only" in refused.json()["error"]["message"]
    tool = {"type": "function", "function": {"name": "lookup"}}
    body = {
        "model": "gemma-3-270m",
        "messages": messages,
        "tools": [tool],
        "tool_choice": "required",
    }
    # A forced call is decoded under a grammar, so even the small model makes one.
    forced = httpx.post(sovereign.base_url + "/chat/completions", json=body, timeout=120)
    assert forced.status_code == 200, forced.text
    choice = forced.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "lookup"


def test_concurrent_chat_and_embeddings_all_answer(sovereign: Sovereign) -> None:
    def ask(i: int) -> int:
        if i % 3 == 0:
            body = {"model": "all-minilm-l6-v2", "input": [f"text {i}"] * 4}
            return httpx.post(
                sovereign.base_url + "/embeddings", json=body, timeout=120
            ).status_code
        body = {
            "model": "gemma-3-270m",
            "messages": [{"role": "user", "content": f"What is {i} + 1?"}],
            "max_tokens": 6,
            "stream": i % 2 == 0,
        }
        return httpx.post(
            sovereign.base_url + "/chat/completions", json=body, timeout=120
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(ask, range(9))) == [200] * 9
