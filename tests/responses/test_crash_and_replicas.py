"""kill -9 in the middle of responses, then a restart: a background response is executed
again and completes, a foreground one fails instead of staying in_progress; and two
replicas on one PostgreSQL share background responses, each executed exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.process import FakeUpstream
from tests.runs.conftest import BASE_ENV
from tests.support.databases import fresh_postgres
from tests.support.processes import (
    Launch,
    ServiceProcess,
    migrate,
    relaunching,
    start_assistants,
    wait_until,
)

SLOW = {"chunks": 40, "tokens_per_s": 8}
SCRIPT = [
    {"match": "survivor", "text": "x " * 40, **SLOW},
    {"match": "survivor", "text": "Recovered in the background."},
    {"match": "foreground", "text": "y " * 40, **SLOW},
]


@pytest.fixture
def launch(database_url: str, upstream: FakeUpstream, tmp_path: Path) -> Iterator[Launch]:
    """Start the service (again) against the module's database; every process is stopped."""
    env = {**BASE_ENV, "SOVEREIGN_PLAYGROUND_URL": upstream.url}
    with relaunching(database_url, tmp_path, env) as start:
        yield start


def test_kill_mid_response_then_restart(launch: Launch, upstream: FakeUpstream) -> None:
    service, sdk = launch()
    background = sdk.responses.create(model="fake-model", input="survivor please", background=True)
    stream = sdk.responses.create(model="fake-model", input="foreground stream", stream=True)
    events = iter(stream)
    first = next(events)
    assert first.type == "response.created"
    foreground_id = first.response.id
    wait_until(lambda: upstream.asked("survivor") == 1 and upstream.asked("foreground") == 1)
    wait_until(lambda: sdk.responses.retrieve(background.id).status == "in_progress")
    service.kill()
    stream.close()

    service, sdk = launch()
    # The lease lapses (3 s), the background response is claimed and executed again.
    done = wait_until(
        lambda: (
            (r := sdk.responses.retrieve(background.id)).status not in ("queued", "in_progress")
            and r
        ),
        timeout=30,
    )
    assert done.status == "completed", done.error
    assert done.output_text == "Recovered in the background."
    assert upstream.asked("survivor") == 2
    # Nobody waits for the foreground one any more: it fails, it does not hang.
    lost = wait_until(
        lambda: (r := sdk.responses.retrieve(foreground_id)).status != "in_progress" and r,
        timeout=30,
    )
    assert lost.status == "failed"
    assert lost.error.code == "server_error" and "stopped" in lost.error.message
    assert upstream.asked("foreground") == 1


JOBS = 30


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    job = {"match": "job", "text": "done", "chunks": 2, "first_token_delay": 0.1, "repeat": True}
    script = [job]
    logs = tmp_path_factory.mktemp("logs")
    with fresh_postgres() as url, run_openai_upstream(script) as upstream:
        migrate(url)
        env = {**BASE_ENV, "SOVEREIGN_PLAYGROUND_URL": upstream.url, "MAX_CONCURRENT_RUNS": "4"}
        services: list[ServiceProcess] = []
        try:
            for name in ("a", "b"):
                services.append(start_assistants(url, Path(logs / f"{name}.log"), env=env))
            yield url, upstream, services
        finally:
            for service in services:
                service.stop()


def test_replicas_share_background_responses(replicas: tuple) -> None:
    url, upstream, services = replicas
    apis = [
        httpx.Client(base_url=f"{s.base_url}/v1", headers={"Authorization": "Bearer test-key"})
        for s in services
    ]
    ids = []
    for i in range(JOBS):
        reply = apis[i % 2].post(
            "/responses", json={"model": "fake-model", "input": f"job-{i}.", "background": True}
        )
        assert reply.status_code == 200, reply.text
        ids.append(reply.json()["id"])
    pending = set(ids)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        for response_id in list(pending):
            status = apis[0].get(f"/responses/{response_id}").json()["status"]
            if status not in ("queued", "in_progress"):
                assert status == "completed"
                pending.discard(response_id)
        time.sleep(0.2)
    assert not pending, f"{len(pending)} responses never finished"
    asked_for = Counter(r["body"]["messages"][-1]["content"] for r in upstream.chat_requests())
    assert asked_for == Counter({f"job-{i}.": 1 for i in range(JOBS)})
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT worker_id, attempts FROM responses").fetchall()
    assert all(attempts == 1 for _, attempts in rows)
    assert len(Counter(worker for worker, _ in rows)) == 2, "one replica did all the work"
    for api in apis:
        api.close()
