"""Validation as OpenAI's, alike on every route: enums, JSON types taken as they are, text
limits, non-empty content; the key stripped in both headers, and sent once. Through the
openai SDK and raw HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import openai
import pytest

from tests.support.processes import ServiceProcess

KEY = {"Authorization": "Bearer test-key"}
TOOL = {"type": "function", "function": {"name": "f"}}


@pytest.fixture(scope="module")
def ids(openai_client: openai.OpenAI) -> dict[str, str]:
    assistant = openai_client.beta.assistants.create(model="m", instructions="Be brief.")
    thread = openai_client.beta.threads.create()
    return {"assistant": assistant.id, "thread": thread.id}


def refused(
    api: httpx.Client, path: str, body: Any, param: str | None, status: int = 400
) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == status, (path, body, response.text)
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param, (path, body, error)
    return error


# Each body is refused on the path given, with ``param`` naming the field; the same field on
# assistants and on runs is refused alike.
RUN_AND_ASSISTANT_CASES = [
    ({"reasoning_effort": "s"}, "reasoning_effort"),
    ({"reasoning_effort": 1}, "reasoning_effort"),
    ({"temperature": True}, "temperature"),
    ({"temperature": "0.5"}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": False}, "top_p"),
    ({"top_p": [1]}, "top_p"),
    ({"instructions": "i" * 256_001}, "instructions"),
    ({"instructions": 5}, "instructions"),
    ({"metadata": {"k": True}}, "metadata.k"),
    ({"model": ""}, "model"),
    ({"response_format": {"type": "xml"}}, "response_format"),
]
RUN_CASES = [
    ({"stream": "true"}, "stream"),
    ({"stream": 1}, "stream"),
    ({"parallel_tool_calls": 0}, "parallel_tool_calls"),
    ({"max_prompt_tokens": 300.0}, "max_prompt_tokens"),
    ({"max_prompt_tokens": True}, "max_prompt_tokens"),
    ({"max_prompt_tokens": "300"}, "max_prompt_tokens"),
    ({"max_completion_tokens": 100.5}, "max_completion_tokens"),
    ({"max_completion_tokens": 255}, "max_completion_tokens"),  # OpenAI's minimum is 256
    (
        {"truncation_strategy": {"type": "last_messages", "last_messages": True}},
        "truncation_strategy.last_messages",
    ),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": {"type": "function"}}, "tool_choice"),
    ({"tools": [TOOL] * 21}, "tools"),
    ({"additional_instructions": "i" * 256_001}, "additional_instructions"),
    ({"additional_messages": [{"role": "user", "content": ""}]}, "additional_messages[0].content"),
]
ASSISTANT_CASES = [
    (
        {"tool_resources": {"file_search": {"vector_stores": [{}, {}]}}},
        "tool_resources.file_search.vector_stores",
    ),
    (
        {"tool_resources": {"code_interpreter": {"file_ids": ["f"] * 21}}},
        "tool_resources.code_interpreter.file_ids",
    ),
    ({"name": "n" * 257}, "name"),
    ({"description": "d" * 513}, "description"),
    ({"tools": [TOOL] * 129}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f" * 65}}]}, "tools[0].function.name"),
]


def test_runs_and_assistants_refuse_alike(api: httpx.Client, ids: dict[str, str]) -> None:
    runs = f"/threads/{ids['thread']}/runs"
    assistant = {"assistant_id": ids["assistant"]}
    for body, param in RUN_AND_ASSISTANT_CASES:
        refused(api, "/assistants", {"model": "m", **body}, param)
        refused(api, f"/assistants/{ids['assistant']}", body, param)
        refused(api, runs, {**assistant, **body}, param)
        refused(api, "/threads/runs", {**assistant, **body}, param)
    for body, param in RUN_CASES:
        refused(api, runs, {**assistant, **body}, param)
        if "additional" not in param:
            refused(api, "/threads/runs", {**assistant, **body}, param)
    for body, param in ASSISTANT_CASES:
        refused(api, "/assistants", {"model": "m", **body}, param)
    # Nothing refused was stored: no run on the thread, only the fixture's assistant.
    assert api.get(runs).json()["data"] == []


def test_values_at_the_limits_are_taken(api: httpx.Client, ids: dict[str, str]) -> None:
    created = api.post(
        "/assistants",
        json={
            "model": "m",
            "name": "n" * 256,
            "description": "d" * 512,
            "instructions": "i" * 256_000,
            "reasoning_effort": "xhigh",
            "temperature": 1,
            "top_p": 0,
            "tools": [TOOL] * 128,
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["temperature"] == 1 and len(created.json()["tools"]) == 128
    message = api.post(
        f"/threads/{ids['thread']}/messages", json={"role": "user", "content": "c" * 256_000}
    )
    assert message.status_code == 200, message.text
    run = api.post(
        f"/threads/{ids['thread']}/runs",
        json={
            "assistant_id": ids["assistant"],
            "reasoning_effort": "low",
            "temperature": 0.5,
            "max_prompt_tokens": 1000,
            "tools": [TOOL] * 20,
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        },
    )
    assert run.status_code == 200, run.text
    api.post(f"/threads/{ids['thread']}/runs/{run.json()['id']}/cancel")


def test_message_content_is_not_empty_and_within_its_limit(
    api: httpx.Client, ids: dict[str, str]
) -> None:
    messages = f"/threads/{ids['thread']}/messages"
    for content, param in [
        ("", "content"),
        ([], "content"),
        ([{"type": "text", "text": ""}], "content[0].text"),
        ("c" * 256_001, "content"),
        ([{"type": "text", "text": "c" * 256_001}], "content[0].text"),
        ([{"type": "text", "text": "c" * 200_000}] * 2, "content"),
        (5, "content"),
    ]:
        refused(api, messages, {"role": "user", "content": content}, param)
        refused(
            api,
            "/threads",
            {"messages": [{"role": "user", "content": content}]},
            f"messages[0].{param}",
        )
    refused(api, messages, {"role": "user", "content": "x", "metadata": {"n": 1}}, "metadata.n")


def test_the_sdk_hears_the_same_refusals(openai_client: openai.OpenAI, ids: dict[str, str]) -> None:
    runs = openai_client.beta.threads.runs
    bad_runs: list[dict[str, Any]] = [
        {"reasoning_effort": "s"},
        {"temperature": True},
        {"max_prompt_tokens": 300.5},
    ]
    for kwargs in bad_runs:
        with pytest.raises(openai.BadRequestError) as caught:
            runs.create(thread_id=ids["thread"], assistant_id=ids["assistant"], **kwargs)
        assert caught.value.body["param"] == next(iter(kwargs))  # type: ignore[index]
        if "max_prompt_tokens" not in kwargs:  # a run's parameter only
            with pytest.raises(openai.BadRequestError):
                openai_client.beta.assistants.create(model="m", **kwargs)
    with pytest.raises(openai.BadRequestError) as empty:
        openai_client.beta.threads.messages.create(ids["thread"], role="user", content="")
    assert empty.value.body["param"] == "content"  # type: ignore[index]


def _raw_status(service: ServiceProcess, header_lines: list[bytes]) -> int:
    """GET /v1/assistants with the header lines exactly as given (whitespace and repeats kept)."""
    request = b"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    request += b"".join(line + b"\r\n" for line in header_lines) + b"\r\n"
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return int(received.split(b" ", 2)[1])


def test_the_key_is_stripped_and_sent_once(assistants_service: ServiceProcess) -> None:
    accepted = [
        [b"X-API-Key: test-key"],
        [b"X-API-Key: test-key \t"],
        [b"X-API-Key:\t test-key"],
        [b"Authorization: Bearer test-key \t"],
        [b"Authorization: Bearer   test-key"],
        [b"Authorization: bearer test-key"],
    ]
    for lines in accepted:
        assert _raw_status(assistants_service, lines) == 200, lines
    refused_lines = [
        ([b"X-API-Key: test-key", b"X-API-Key: test-key"], 400),
        ([b"X-API-Key: test-key", b"X-API-Key: wrong"], 400),
        ([b"X-API-Key: wrong", b"X-API-Key: test-key"], 400),
        ([b"Authorization: Bearer test-key", b"Authorization: Bearer test-key"], 400),
        ([b"Authorization: Bearer test-key", b"Authorization: Bearer wrong"], 400),
        ([b"Authorization: Bearer wrong", b"Authorization: Bearer test-key"], 400),
        ([b"X-API-Key: test key"], 401),
        ([b"X-API-Key:  "], 401),
        ([b"Authorization: Bearer test-key-2"], 401),
    ]
    for lines, status in refused_lines:
        assert _raw_status(assistants_service, lines) == status, lines
    # (The SDK's HTTP client refuses to send a header value with outer whitespace.)
    wrong = openai.OpenAI(
        base_url=f"{assistants_service.base_url}/v1", api_key="test-keyx", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        wrong.beta.assistants.list()
    with httpx.Client(base_url=f"{assistants_service.base_url}/v1") as client:
        twice = client.get("/assistants", headers=[("Authorization", "Bearer test-key")] * 2)
        assert twice.status_code == 400 and twice.json()["error"]["code"] == "duplicate_header"
