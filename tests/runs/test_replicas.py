"""Two service processes on one PostgreSQL share 100 queued runs: each runs exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.runs.conftest import BASE_ENV
from tests.support.databases import fresh_postgres
from tests.support.processes import ServiceProcess, migrate, start_assistants

RUNS = 100


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with fresh_postgres() as url:  # skips without TEST_DATABASE_URL
        yield url


@pytest.fixture(scope="module")
def replicas(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    script = [
        {"match": "job", "text": "done", "chunks": 2, "first_token_delay": 0.1, "repeat": True},
        {"match": "slow", "text": "s " * 50, "chunks": 50, "tokens_per_s": 10},
    ]
    logs = tmp_path_factory.mktemp("logs")
    with run_openai_upstream(script) as upstream:
        migrate(database_url)
        env = {
            **BASE_ENV,
            "SOVEREIGN_PLAYGROUND_URL": upstream.url,
            # Small batches, so neither replica can take all the work at once.
            "MAX_CONCURRENT_RUNS": "8",
        }
        services: list[ServiceProcess] = []
        try:
            for name in ("a", "b"):
                services.append(start_assistants(database_url, Path(logs / f"{name}.log"), env=env))
            yield upstream, services
        finally:
            for service in services:
                service.stop()


@pytest.fixture
def apis(replicas: tuple) -> Iterator[list[httpx.Client]]:
    """One API client per replica, in the order of the replicas."""
    _, services = replicas
    clients = [
        httpx.Client(
            base_url=f"{s.base_url}/v1", headers={"Authorization": "Bearer test-key"}, timeout=30
        )
        for s in services
    ]
    yield clients
    for client in clients:
        client.close()


def test_two_replicas_execute_each_run_exactly_once(
    database_url: str, replicas: tuple, apis: list[httpx.Client]
) -> None:
    upstream, _ = replicas
    assistant = apis[0].post("/assistants", json={"model": "fake-model"}).json()
    runs: dict[str, str] = {}
    for i in range(RUNS):
        api = apis[i % 2]
        thread = api.post(
            "/threads", json={"messages": [{"role": "user", "content": f"job-{i}."}]}
        ).json()
        run = api.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]})
        runs[run.json()["id"]] = thread["id"]
    deadline = time.monotonic() + 60
    pending = dict(runs)
    while pending and time.monotonic() < deadline:
        for run_id, thread_id in list(pending.items()):
            status = apis[0].get(f"/threads/{thread_id}/runs/{run_id}").json()["status"]
            if status not in ("queued", "in_progress"):
                assert status == "completed"
                del pending[run_id]
        time.sleep(0.2)
    assert not pending, f"{len(pending)} runs never finished"

    asked = Counter(r["body"]["messages"][-1]["content"] for r in upstream.chat_requests())
    assert asked == Counter({f"job-{i}.": 1 for i in range(RUNS)})
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT worker_id, attempts FROM runs").fetchall()
    assert all(attempts == 1 for _, attempts in rows)
    per_worker = Counter(worker for worker, _ in rows)
    assert len(per_worker) == 2, f"one replica did all the work: {per_worker}"


def test_cancel_through_the_other_replica_stops_the_run(
    database_url: str, replicas: tuple, apis: list[httpx.Client]
) -> None:
    upstream, services = replicas
    assistant = apis[0].post("/assistants", json={"model": "fake-model"}).json()
    thread = (
        apis[0]
        .post("/threads", json={"messages": [{"role": "user", "content": "slow one"}]})
        .json()
    )
    run = apis[0].post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]})
    url = f"/threads/{thread['id']}/runs/{run.json()['id']}"
    deadline = time.monotonic() + 10
    while apis[0].get(url).json()["status"] != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with psycopg.connect(database_url) as conn:
        (worker,) = conn.execute(
            "SELECT worker_id FROM runs WHERE id = %s", (run.json()["id"],)
        ).fetchone()
    # Cancel through the replica that does not execute the run: it can only say so in the
    # database, and the executing replica must notice at its next heartbeat.
    other = next(
        api for api, s in zip(apis, services, strict=True) if f":{s.proc.pid}:" not in worker
    )
    assert other.post(f"{url}/cancel").json()["status"] == "cancelling"
    deadline = time.monotonic() + 5
    while (status := other.get(url).json()["status"]) == "cancelling":
        assert time.monotonic() < deadline, "the cancel never reached the executing replica"
        time.sleep(0.05)
    assert status == "cancelled"
    seen = upstream.wait_for(
        lambda reqs: any(r.get("cancelled") for r in reqs if "slow one" in str(r["body"])),
        timeout=5,
    )
    assert any(r.get("cancelled") for r in seen if "slow one" in str(r["body"]))
