"""Per-backend readiness in /health and /v1/models (cached), and a backend that dies mid-request."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.ollama_upstream import run_ollama_upstream
from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.sovereign import run_sovereign
from tests.fakes.sse import sse_data

pytestmark = pytest.mark.timeout(60)


def test_health_and_models_say_whether_each_backend_can_answer() -> None:
    with (
        run_ollama_upstream({"models": ["qwen2.5-coder:7b"]}) as pulled,
        run_ollama_upstream({"models": []}) as empty,
    ):
        config = {
            "default_backend": "pulled",
            "backends": {
                "pulled": {"type": "ollama", "url": pulled.url},
                "empty": {"type": "ollama", "url": empty.url, "models": ["other*"]},
            },
        }
        with run_sovereign(config=config) as sv:
            health = httpx.get(sv.url + "/health").json()
            assert health["status"] == "degraded"
            assert health["backends"]["pulled"]["ready"] is True
            assert health["backends"]["pulled"]["models"] == ["qwen2.5-coder:7b"]
            assert health["backends"]["empty"]["reachable"] is True
            assert health["backends"]["empty"]["ready"] is False
            assert "no model is pulled" in health["backends"]["empty"]["error"]
            listing = httpx.get(sv.base_url + "/models").json()
            assert [(m["id"], m["ready"]) for m in listing["data"]] == [("qwen2.5-coder:7b", True)]
            assert listing["backends"]["empty"]["ready"] is False
            assert listing["backends"]["pulled"] == {"ready": True, "error": None}


def test_probes_are_cached_so_frequent_health_checks_stay_cheap() -> None:
    with run_ollama_upstream({"models": ["m"]}) as up:
        with run_sovereign(env={"OLLAMA_HOST": up.url}) as sv, httpx.Client() as client:
            for _ in range(20):
                assert client.get(sv.url + "/health").json()["status"] == "ok"
                assert client.get(sv.base_url + "/models").json()["data"][0]["ready"] is True
        tags = [r for r in up.requests() if r["path"] == "/api/tags"]
        # 40 reads within a second or two share one probe per 2 s (startup probes included).
        assert 1 <= len(tags) <= 3


def chat(sv_base: str, stream: bool) -> httpx.Response:
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "go"}],
        "stream": stream,
    }
    return httpx.post(sv_base + "/chat/completions", json=body, timeout=20)


@pytest.mark.parametrize(
    ("script", "stream"),
    [({"crash": True}, False), ({"crash": True}, True), ({"crash_after": 0}, True)],
    ids=["non-streamed", "streamed-before-headers", "streamed-before-first-chunk"],
)
def test_a_backend_that_dies_before_answering_is_a_503(
    script: dict[str, Any], stream: bool
) -> None:
    with run_openai_upstream([{"text": "never", "chunks": 3, **script}]) as up:
        config = {"backends": {"local": {"type": "openai", "url": up.url}}}
        with run_sovereign(config=config) as sv:
            response = chat(sv.base_url, stream)
            client = openai.OpenAI(base_url=sv.base_url, api_key="k", max_retries=0)
            with pytest.raises(openai.APIStatusError) as caught:  # and the SDK says so too
                client.chat.completions.create(
                    model="fake-model", messages=[{"role": "user", "content": "again"}]
                )
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_disconnected" and error["type"] == "server_error"
    assert "crashed" in error["message"]
    assert caught.value.status_code in (502, 503)  # the process is gone: unreachable now


def test_a_backend_that_dies_mid_stream_ends_it_with_an_error_event() -> None:
    with run_openai_upstream([{"text": "abcdef", "chunks": 6, "crash_after": 3}]) as up:
        config = {"backends": {"local": {"type": "openai", "url": up.url}}}
        with run_sovereign(config=config) as sv:
            response = chat(sv.base_url, stream=True)
    assert response.status_code == 200  # the headers had gone with the first chunks
    items = sse_data(response.text)
    text = "".join(i["choices"][0]["delta"].get("content") or "" for i in items if i.get("choices"))
    assert text == "ab" and "[DONE]" not in items
    assert items[-1]["error"]["code"] == "upstream_disconnected", json.dumps(items[-1])
