"""Failure is a state: upstream errors, stalls, malformed or cut streams end runs ``failed``.

Also cancel (which must stop the upstream request) and upstream quirks that are not
failures. SQLite only: none of this depends on the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.runs.conftest import FAST_FAILURE_ENV, WEATHER_TOOL
from tests.runs.sse import stream_events
from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, free_port, start_assistants

SERVICE_ENV = FAST_FAILURE_ENV
SCRIPT = [
    {"match": "err500", "status": 500},
    {"match": "err429", "status": 429, "error": {"message": "slow down", "type": "rate"}},
    {"match": "err400", "status": 400, "error": {"message": "context too long"}},
    {"match": "stallfirst", "text": "never", "first_token_delay": 6},
    {
        "match": "stallmid",
        "text": "a b c d e f",
        "chunks": 6,
        "stall": {"after_chunks": 3, "seconds": 6},
    },
    {"match": "malformed", "text": "a b c d", "chunks": 4, "malformed_after": 2},
    {"match": "truncated", "text": "a b c d", "chunks": 4, "truncate_after": 3},
    {"match": "dropped", "text": "a b c d", "chunks": 4, "drop_after": 2},
    {"match": "midstream", "text": "a b c d", "chunks": 4, "error_after": 2},
    {"match": "streamfail", "status": 500},
    # away, then back: what a stack failing over or a model loading looks like
    {"match": "comeback", "status": 503, "error": {"message": "model loading"}},
    {
        "match": "comeback",
        "status": 502,
        "error": {"message": "backend gone", "code": "upstream_unreachable"},
    },
    {"match": "comeback", "text": "Back again.", "chunks": 2},
    {"match": "stillaway", "status": 503, "error": {"message": "model loading"}, "repeat": True},
    {"match": "nodone", "text": "All there.", "chunks": 3, "omit_done": True},
    {"match": "finalusage", "text": "Usage late.", "usage_in_final_chunk": True},
    {"match": "hangup", "text": "z " * 30, "chunks": 30, "tokens_per_s": 60},
    {"match": "cancelme", "text": "x " * 60, "chunks": 60, "tokens_per_s": 10},
    {
        "match": "noindex",
        "omit_index": True,
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Lima"}, "id": None},
            {"name": "get_weather", "arguments": {"city": "Quito"}, "id": None},
        ],
    },
]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield sqlite_url(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="module")
def assistant_id(client: openai.OpenAI) -> str:
    return client.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL]).id


def run_once(client: openai.OpenAI, assistant_id: str, text: str) -> Any:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant_id, poll_interval_ms=50, timeout=30
    )


def streamed_run(client: openai.OpenAI, assistant_id: str, text: str) -> Any:
    """A streamed run executes in the process that was asked, not in any replica that polls
    the shared database first (the module's service shares it)."""
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as s:
        s.until_done()
    return s.get_final_run()


@pytest.mark.parametrize(
    ("word", "code", "detail"),
    [
        ("err500", "server_error", "HTTP 500"),
        ("err429", "rate_limit_exceeded", "slow down"),
        ("err400", "invalid_prompt", "context too long"),
        ("stallfirst", "server_error", "timed out"),
        ("stallmid", "server_error", "timed out"),
        ("malformed", "server_error", "malformed"),
        ("truncated", "server_error", "ended before"),
        ("dropped", "server_error", "connection"),
        ("midstream", "server_error", "mid-stream"),
    ],
)
def test_upstream_failures_end_the_run_failed(
    client: openai.OpenAI, assistant_id: str, word: str, code: str, detail: str
) -> None:
    started = time.monotonic()
    run = run_once(client, assistant_id, f"{word} case")
    assert run.status == "failed"
    assert run.last_error.code == code
    assert detail in run.last_error.message
    assert run.failed_at and run.expires_at is None
    assert time.monotonic() - started < 5, "the failure took longer than the timeouts allow"
    thread_id = run.thread_id
    for step in client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread_id):
        assert step.status == "failed" and step.last_error.code == code
    for message in client.beta.threads.messages.list(thread_id):
        assert message.status in ("completed", "incomplete")


def test_api_stays_responsive_while_the_upstream_stalls(
    client: openai.OpenAI, assistant_id: str, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "stallmid again"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant_id)
    # The scripted answer was consumed above: this one is "script exhausted" (HTTP 500) or a
    # stall; either way the API must answer promptly meanwhile.
    for _ in range(5):
        started = time.monotonic()
        client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
        assert time.monotonic() - started < 0.5
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    assert run.status == "failed"


def test_a_failed_streamed_run_ends_with_run_failed_then_done(
    client: openai.OpenAI, assistant_id: str, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "streamfail"}])
    events = stream_events(
        runs_service.base_url, f"threads/{thread.id}/runs", {"assistant_id": assistant_id}
    )
    names = [n for n, _ in events]
    assert names == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.failed",
        "done",
    ]
    assert events[-2][1]["last_error"]["code"] == "server_error"


@pytest.mark.parametrize(
    ("word", "text"), [("nodone", "All there."), ("finalusage", "Usage late.")]
)
def test_upstream_quirks_that_are_not_failures(
    client: openai.OpenAI, assistant_id: str, word: str, text: str
) -> None:
    run = run_once(client, assistant_id, word)
    assert run.status == "completed", run.last_error
    assert run.usage and run.usage.completion_tokens > 0
    message = client.beta.threads.messages.list(run.thread_id).data[0]
    assert message.content[0].text.value == text


def test_tool_calls_without_index_or_ids(client: openai.OpenAI, assistant_id: str) -> None:
    run = run_once(client, assistant_id, "noindex please")
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.arguments for c in calls] == ['{"city": "Lima"}', '{"city": "Quito"}']
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id


def test_cancel_stops_the_upstream_request(
    client: openai.OpenAI, assistant_id: str, upstream: FakeUpstream
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "cancelme now"}])
    handler_events: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant_id) as stream:
        for event in stream:
            handler_events.append(event.event)
            if event.event == "thread.message.delta" and handler_events.count(event.event) == 2:
                cancelling = client.beta.threads.runs.cancel(
                    run_id=stream.current_run.id, thread_id=thread.id
                )
                assert cancelling.status == "cancelling"
    assert handler_events[-1] == "thread.run.cancelled"
    run = stream.get_final_run()
    assert run.status == "cancelled" and run.cancelled_at
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.status == "incomplete"
    assert message.incomplete_details.reason == "run_cancelled"
    seen = upstream.wait_for(
        lambda reqs: any(r.get("cancelled") for r in reqs if "cancelme" in str(r.get("body"))),
        timeout=5,
    )
    (request,) = [r for r in seen if "cancelme" in str(r.get("body"))]
    assert request.get("cancelled") is True and request["completed"] is False


def test_a_client_hanging_up_does_not_stop_the_run(
    client: openai.OpenAI, assistant_id: str, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hangup early"}])
    with httpx.stream(
        "POST",
        f"{runs_service.base_url}/v1/threads/{thread.id}/runs",
        headers={"Authorization": "Bearer test-key"},
        json={"assistant_id": assistant_id, "stream": True},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if line == "event: thread.message.delta":
                break
    run = client.beta.threads.runs.list(thread.id).data[0]
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    assert run.status == "completed"
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert text == "z " * 30


def test_an_upstream_away_for_a_moment_delays_the_run_not_fails_it(
    client: openai.OpenAI, assistant_id: str, runs_service: ServiceProcess
) -> None:
    run = run_once(client, assistant_id, "comeback")
    assert run.status == "completed", run.last_error
    messages = client.beta.threads.messages.list(thread_id=run.thread_id, order="asc").data
    replies = [m for m in messages if m.role == "assistant"]
    assert [m.content[0].text.value for m in replies] == ["Back again."]
    steps = client.beta.threads.runs.steps.list(thread_id=run.thread_id, run_id=run.id).data
    assert len(steps) == 1 and steps[0].status == "completed"


def test_an_upstream_away_past_the_retry_window_fails_the_run(
    client: openai.OpenAI, assistant_id: str
) -> None:
    began = time.monotonic()
    run = run_once(client, assistant_id, "stillaway")
    waited = time.monotonic() - began
    assert run.status == "failed" and run.last_error.code == "server_error"
    assert "HTTP 503" in run.last_error.message and "model loading" in run.last_error.message
    assert waited >= float(SERVICE_ENV["UPSTREAM_RETRY_SECONDS"]), waited


def test_upstream_down_fails_runs_and_health_says_so(
    database_url: str, runs_service: ServiceProcess, tmp_path: Path
) -> None:
    service = start_assistants(
        database_url,
        tmp_path / "down.log",
        env={
            "SOVEREIGN_PLAYGROUND_URL": f"http://127.0.0.1:{free_port()}",
            "UPSTREAM_CONNECT_TIMEOUT": "1",
            "UPSTREAM_RETRY_SECONDS": "0",
        },
    )
    try:
        health = httpx.get(f"{service.base_url}/health").json()
        assert health["status"] == "degraded" and health["inference"] == "upstream"
        sdk = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="test-key", max_retries=0)
        assistant = sdk.beta.assistants.create(model="fake-model")
        run = streamed_run(sdk, assistant.id, "anyone there?")
        assert run.status == "failed" and run.last_error.code == "server_error"
        assert "unreachable" in run.last_error.message
    finally:
        service.stop()


def test_mock_inference_answers_offline(database_url: str, tmp_path: Path) -> None:
    service = start_assistants(
        database_url,
        tmp_path / "mock.log",
        env={"USE_MOCK_INFERENCE": "true", "SOVEREIGN_PLAYGROUND_URL": "http://127.0.0.1:9"},
    )
    try:
        assert httpx.get(f"{service.base_url}/health").json()["inference"] == "mock"
        sdk = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="test-key", max_retries=0)
        assistant = sdk.beta.assistants.create(model="any")
        first = streamed_run(sdk, assistant.id, "ping")
        second = streamed_run(sdk, assistant.id, "ping")
        assert first.status == second.status == "completed"
        texts = [
            sdk.beta.threads.messages.list(r.thread_id).data[0].content[0].text.value
            for r in (first, second)
        ]
        assert texts[0] == texts[1] == "(mock) You said: ping"
    finally:
        service.stop()
