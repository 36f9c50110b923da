"""Clients for the assistants suites whose every JSON response is checked against the reference."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.openapi import ConformanceLog, conformance_hook
from tests.support.processes import ServiceProcess

API_KEY = "test-key"


@pytest.fixture(scope="module")
def conformance() -> ConformanceLog:
    return ConformanceLog()


@pytest.fixture(scope="module")
def openai_client(
    assistants_service: ServiceProcess, conformance: ConformanceLog
) -> Iterator[openai.OpenAI]:
    """The official SDK; a response that does not match the OpenAPI reference fails the test."""
    http_client = httpx.Client(event_hooks={"response": [conformance_hook(conformance)]})
    client = openai.OpenAI(
        base_url=f"{assistants_service.base_url}/v1",
        api_key=API_KEY,
        max_retries=0,
        http_client=http_client,
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def api(assistants_service: ServiceProcess, conformance: ConformanceLog) -> Iterator[httpx.Client]:
    """Raw HTTP on /v1 with the key as a Bearer token, responses checked like the SDK's."""
    with httpx.Client(
        base_url=f"{assistants_service.base_url}/v1",
        headers={"Authorization": f"Bearer {API_KEY}"},
        event_hooks={"response": [conformance_hook(conformance)]},
        timeout=30,
    ) as client:
        yield client
