"""Fixtures shared by every suite: databases (SQLite and PostgreSQL) and real service processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.databases import fresh_postgres, sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="module", params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, empty database per test module, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path_factory.mktemp("sqlite"))
        return
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def assistants_service(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """The assistants service as a real process on a free port, migrated, mock inference off."""
    log = tmp_path_factory.mktemp("logs") / "assistants.log"
    with run_assistants(database_url, log) as service:
        yield service


@pytest.fixture(scope="module")
def openai_client(assistants_service: ServiceProcess):
    """The official openai SDK, pointed at the service under test."""
    openai = pytest.importorskip("openai")
    return openai.OpenAI(
        base_url=f"{assistants_service.base_url}/v1", api_key="test-key", max_retries=0
    )
