"""Fixtures for the retrieval suites: a scripted upstream whose embeddings carry meaning
(hashed bag-of-words), the service pointed at it, and SDK clients checked against the
reference. A module may set ``SCRIPT`` (chat responses) and ``SERVICE_ENV``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.process import FakeUpstream
from tests.support.openapi import ConformanceLog, conformance_hook
from tests.support.processes import ServiceProcess, run_module_assistants

EMBEDDING_DIMS = 256
BASE_ENV = {
    "EMBEDDING_MODEL": "fake-embedder",
    "RUN_LEASE_SECONDS": "3",
    "RUN_POLL_SECONDS": "0.2",
    "UPSTREAM_FIRST_TOKEN_TIMEOUT": "20",
    "UPSTREAM_IDLE_TIMEOUT": "20",
}


@pytest.fixture(scope="module")
def upstream(request: pytest.FixtureRequest, database_url: str) -> Iterator[FakeUpstream]:
    script = {"responses": getattr(request.module, "SCRIPT", []), "embedding_dims": EMBEDDING_DIMS}
    with run_openai_upstream(script) as fake:
        yield fake


@pytest.fixture(scope="module")
def service(
    request: pytest.FixtureRequest,
    database_url: str,
    upstream: FakeUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    with run_module_assistants(
        request, database_url, upstream.url, tmp_path_factory, BASE_ENV
    ) as running:
        yield running


@pytest.fixture(scope="module")
def conformance() -> ConformanceLog:
    return ConformanceLog()


@pytest.fixture(scope="module")
def client(service: ServiceProcess, conformance: ConformanceLog) -> Iterator[openai.OpenAI]:
    http_client = httpx.Client(event_hooks={"response": [conformance_hook(conformance)]})
    sdk = openai.OpenAI(
        base_url=f"{service.base_url}/v1",
        api_key="test-key",
        max_retries=0,
        http_client=http_client,
    )
    yield sdk
    sdk.close()


@pytest.fixture(scope="module")
def api(service: ServiceProcess, conformance: ConformanceLog) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{service.base_url}/v1",
        headers={"Authorization": "Bearer test-key"},
        event_hooks={"response": [conformance_hook(conformance)]},
        timeout=30,
    ) as http:
        yield http


DOCUMENTS: dict[str, str] = {
    "volcanoes.md": (
        "# Volcanoes\n\nMount Etna in Sicily is the most active volcano in Europe. Its lava "
        "flows and ash eruptions are monitored by volcanologists every day. Magma rises "
        "through the crust and erupts as lava."
    ),
    "baking.txt": (
        "Sourdough bread needs a starter of flour and water fermented by wild yeast. Knead "
        "the dough, let it rise overnight, and bake it in a hot oven until the crust browns."
    ),
    "tides.txt": (
        "Ocean tides are caused by the gravitational pull of the moon and the sun. Spring "
        "tides happen at full and new moon; neap tides at the quarter moons."
    ),
}


def upload(client: openai.OpenAI, name: str, body: str | bytes) -> Any:
    data = body.encode() if isinstance(body, str) else body
    return client.files.create(file=(name, data), purpose="assistants")
