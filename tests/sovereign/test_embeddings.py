"""POST /v1/embeddings through sovereign, in front of scripted Ollama and OpenAI upstreams."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.ollama_upstream import run_ollama_upstream
from tests.fakes.openai_upstream import fake_vector, run_openai_upstream
from tests.fakes.process import FakeUpstream
from tests.fakes.sovereign import run_sovereign

pytestmark = pytest.mark.timeout(60)

FAULTS = {
    "[missing]": "missing_one",
    "[dims]": "wrong_dims",
    "[shuffled]": "shuffled",
    "[no-usage]": "no_usage",
    "[500]": "error_500",
    "[too-long]": "too_long",
}
SCRIPT = {"models": ["embedder", "chat"], "responses": [], "embedding_faults": FAULTS}


@pytest.fixture(scope="module", params=["openai", "ollama"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeUpstream, openai.OpenAI]]:
    run = run_openai_upstream if request.param == "openai" else run_ollama_upstream
    with run(SCRIPT) as up:
        config = {"backends": {"local": {"type": request.param, "url": up.url}}}
        with run_sovereign(config=config) as sv:
            client = openai.OpenAI(base_url=sv.base_url, api_key="k", timeout=20, max_retries=0)
            yield request.param, up, client


def close(got: list[list[float]], expected: list[list[float]]) -> bool:
    return len(got) == len(expected) and all(
        g == pytest.approx(e, abs=1e-6) for g, e in zip(got, expected, strict=True)
    )


def embed_requests(up: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in up.requests() if r["path"] in ("/v1/embeddings", "/api/embed")]


def test_sdk_gets_vectors_in_order_as_floats_and_base64(served: Any) -> None:
    client = served[2]
    texts = ["alpha", "beta", "gamma"]
    # Left out, the SDK asks for base64 and decodes it itself.
    for extra in ({"encoding_format": "float"}, {}):
        result = client.embeddings.create(model="embedder", input=texts, **extra)
        got = [d.embedding for d in result.data]
        assert close(got, [fake_vector(t) for t in texts])
        assert [d.index for d in result.data] == [0, 1, 2]
        assert result.model == "embedder" and result.usage.prompt_tokens == 3
    raw = httpx.post(
        str(client.base_url) + "embeddings",
        json={"model": "embedder", "input": "one", "encoding_format": "base64"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == pytest.approx(
        fake_vector("one"), abs=1e-6
    )
    assert raw["object"] == "list" and raw["data"][0]["object"] == "embedding"


def test_upstream_is_asked_for_floats_and_ollama_never_truncates(served: Any) -> None:
    kind, up, client = served
    client.embeddings.create(model="embedder", input="x", encoding_format="base64")
    sent = embed_requests(up)[-1]["body"]
    if kind == "openai":
        assert sent["encoding_format"] == "float"
    else:
        assert sent["truncate"] is False and sent["input"] == "x"


@pytest.mark.parametrize(("marker", "status"), [("[missing]", 502), ("[500]", 502)])
def test_bad_upstream_answers_are_errors(served: Any, marker: str, status: int) -> None:
    _, _, client = served
    with pytest.raises(openai.APIStatusError) as caught:
        client.embeddings.create(model="embedder", input=["a", f"b {marker}"])
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"message", "type", "param", "code"}


def test_openai_upstream_faults_are_normalised_or_refused(served: Any) -> None:
    kind, _, client = served
    if kind != "openai":
        pytest.skip("these faults are scripted for the OpenAI-compatible upstream")
    texts = ["first", "second [shuffled]"]
    result = client.embeddings.create(model="embedder", input=texts)
    assert close([d.embedding for d in result.data], [fake_vector(t) for t in texts])
    bare = client.embeddings.create(model="embedder", input=["x [no-usage]"])
    assert bare.usage.prompt_tokens == 0 and bare.usage.total_tokens == 0
    with pytest.raises(openai.APIStatusError, match="different lengths"):
        client.embeddings.create(model="embedder", input=["a", "b [dims]"])


def test_ollama_refuses_what_it_would_cut_or_cannot_read(served: Any) -> None:
    kind, _, client = served
    if kind != "ollama":
        pytest.skip("Ollama's own limits")
    with pytest.raises(openai.BadRequestError, match="exceeds the context length"):
        client.embeddings.create(model="embedder", input="very long [too-long]")
    with pytest.raises(openai.BadRequestError, match="token ids"):
        client.embeddings.create(model="embedder", input=[[1, 2, 3]])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ""}, "input[0]"),
        ({"input": ["ok", ""]}, "input[1]"),
        ({"input": ["ok", 3]}, "input[1]"),
        ({"input": "ok", "encoding_format": "hex"}, "encoding_format"),
        ({"input": "ok", "dimensions": 0}, "dimensions"),
        ({}, "input"),
    ],
)
def test_invalid_requests_are_400_before_the_backend(
    served: Any, body: dict[str, Any], param: str
) -> None:
    _, up, client = served
    before = len(embed_requests(up))
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/embeddings", body={"model": "embedder", **body}, cast_to=object)
    assert caught.value.body["param"] == param
    assert len(embed_requests(up)) == before


def test_a_backend_that_dies_mid_request_is_a_503() -> None:
    with run_openai_upstream({**SCRIPT, "embedding_faults": {"[die]": "crash"}}) as up:
        config = {"backends": {"local": {"type": "openai", "url": up.url}}}
        with run_sovereign(config=config) as sv:
            body = {"model": "embedder", "input": "now [die]"}
            response = httpx.post(sv.base_url + "/embeddings", json=body, timeout=20)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_disconnected"
