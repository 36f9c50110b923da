"""Fixtures for the runs suites: a scripted upstream process and the service pointed at it.

A test module sets ``SCRIPT`` (the fake upstream's script) and may set ``SERVICE_ENV``
(``FAST_FAILURE_ENV`` for short upstream timeouts).
Each response in a script is picked by a ``match`` substring of the last user message, so
tests stay independent by using distinct words.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.process import FakeUpstream
from tests.support.processes import ServiceProcess, run_module_assistants

# Limits for tests that expect runs to succeed: generous, so a busy machine cannot fail them.
BASE_ENV = {
    "UPSTREAM_CONNECT_TIMEOUT": "5",
    "UPSTREAM_FIRST_TOKEN_TIMEOUT": "20",
    "UPSTREAM_IDLE_TIMEOUT": "20",
    "RUN_LEASE_SECONDS": "3",
    "RUN_POLL_SECONDS": "0.2",
}
# Short limits so failure tests take seconds: a stall of 2 s is already "too slow".
FAST_FAILURE_ENV = {
    **BASE_ENV,
    "UPSTREAM_CONNECT_TIMEOUT": "2",
    "UPSTREAM_FIRST_TOKEN_TIMEOUT": "1.5",
    "UPSTREAM_IDLE_TIMEOUT": "1",
    "UPSTREAM_RETRY_SECONDS": "2",
}


@pytest.fixture(scope="module")
def upstream(request: pytest.FixtureRequest, database_url: str) -> Iterator[FakeUpstream]:
    """The module's scripted upstream; one per database, since responses are consumed."""
    script: Any = getattr(request.module, "SCRIPT", [])
    with run_openai_upstream(script) as fake:
        yield fake


@pytest.fixture(scope="module")
def runs_service(
    request: pytest.FixtureRequest,
    database_url: str,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    with run_module_assistants(
        request, database_url, upstream.url, tmp_path_factory, BASE_ENV
    ) as service:
        yield service


@pytest.fixture(scope="module")
def client(runs_service: ServiceProcess) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=f"{runs_service.base_url}/v1", api_key="test-key", max_retries=0)
    yield sdk
    sdk.close()


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
