"""Fixtures for the Responses suites: the runs' scripted upstream and service, and an SDK
client whose every JSON response is checked against the Responses reference."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.runs.conftest import runs_service, upstream
from tests.support.openapi_responses import Checked, assert_event, conformance_hook
from tests.support.processes import ServiceProcess

__all__ = ["runs_service", "upstream"]


@pytest.fixture(scope="module")
def checked() -> Checked:
    return Checked()


@pytest.fixture(scope="module")
def client(runs_service: ServiceProcess, checked: Checked) -> Iterator[openai.OpenAI]:
    http = httpx.Client(event_hooks={"response": [conformance_hook(checked)]}, timeout=60)
    sdk = openai.OpenAI(
        base_url=f"{runs_service.base_url}/v1", api_key="test-key", max_retries=0, http_client=http
    )
    yield sdk
    sdk.close()


def raw_events(service: ServiceProcess, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST /v1/responses with stream=true over plain HTTP: every event's data, each checked
    against its schema in the reference, with its ``event:`` name equal to its type."""
    events: list[dict[str, Any]] = []
    headers = {"Authorization": "Bearer test-key"}
    with httpx.stream(
        "POST",
        f"{service.base_url}/v1/responses",
        json={**body, "stream": True},
        headers=headers,
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        name = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                assert data["type"] == name
                assert_event(data)
                events.append(data)
    return events


def upstream_messages(upstream: Any, word: str) -> list[dict[str, Any]]:
    """The messages of the last chat request whose last message holds ``word``."""
    bodies = [r["body"] for r in upstream.chat_requests()]
    matching = [b for b in bodies if word in str(b["messages"][-1])]
    assert matching, f"no upstream request ending with {word!r}"
    return matching[-1]["messages"]
