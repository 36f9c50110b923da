"""The scripted fake upstreams behave as their script says (they are what the other tests trust)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.sse import sse_data

pytestmark = pytest.mark.timeout(60)


def test_openai_fake_streams_text_tool_calls_and_records_requests() -> None:
    script = [
        {
            "match": "weather",
            "tool_calls": [
                {"name": "get_weather", "arguments": {"city": "Paris"}, "chunks": 4},
                {"name": "get_time", "arguments": {"tz": "CET"}},
            ],
        },
        {"text": "Hello there, friend", "chunks": 4},
    ]
    with run_openai_upstream(script) as up:
        client = openai.OpenAI(base_url=up.base_url, api_key="k", timeout=10)
        stream = client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
            temperature=0.3,
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello there, friend"
        assert chunks[-1].usage is not None and chunks[-1].choices == []
        calls = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "weather?"}]
        ).choices[0]
        assert calls.finish_reason == "tool_calls"
        assert [c.function.name for c in calls.message.tool_calls] == ["get_weather", "get_time"]
        assert json.loads(calls.message.tool_calls[0].function.arguments) == {"city": "Paris"}
        seen = up.chat_requests()
        assert seen[0]["body"]["temperature"] == 0.3
        assert seen[0]["authorization"] == "Bearer k"
        assert seen[0]["completed"] is True


def test_openai_fake_faults() -> None:
    script = [
        {"status": 429, "error": {"message": "slow down", "type": "rate_limit"}},
        {"text": "abcdef", "chunks": 6, "truncate_after": 3},
        {"text": "abcdef", "chunks": 6, "drop_after": 2},
        {"text": "abc", "chunks": 3, "stall": {"after_chunks": 2, "seconds": 0.5}},
        {"text": "x" * 200, "chunks": 200, "tokens_per_s": 2000},
    ]
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": True}
    with run_openai_upstream(script) as up, httpx.Client(base_url=up.base_url, timeout=10) as c:
        r = c.post("/chat/completions", json=body)
        assert r.status_code == 429 and r.json()["error"]["message"] == "slow down"
        payloads = sse_data(c.post("/chat/completions", json=body).text)
        assert len(payloads) == 3 and "[DONE]" not in payloads
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/chat/completions", json=body)
        start = time.perf_counter()
        assert sse_data(c.post("/chat/completions", json=body).text)[-1] == "[DONE]"
        assert time.perf_counter() - start >= 0.5
        start = time.perf_counter()
        c.post("/chat/completions", json=body)
        assert 0.09 <= time.perf_counter() - start < 2.0  # 200 chunks at 2,000/s
