"""Ingestion survives crashes and shares work: a service killed mid-ingestion leaves no
file in_progress once it is back, and two replicas on one PostgreSQL ingest a batch with
every chunk embedded and stored exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from sqlalchemy import func, select

from services.assistants.tables import Chunk, VectorStoreFile
from tests.assistants.rows import engine_for
from tests.fakes.openai_upstream import run_openai_upstream
from tests.retrieval.conftest import BASE_ENV, EMBEDDING_DIMS
from tests.support.databases import fresh_postgres, sqlite_url
from tests.support.processes import migrate, start_assistants, wait_until

SENTENCE = "Tanker {i} unloads crude at berth {j} while the pilot boat waits offshore. "


def long_text(i: int, sentences: int = 120) -> bytes:
    return "".join(SENTENCE.format(i=i, j=j) for j in range(sentences)).encode()


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="test-key", max_retries=0)


def chunk_positions(database_url: str) -> Counter[tuple[str, str, int]]:
    with engine_for(database_url) as engine, engine.connect() as conn:
        rows = conn.execute(select(Chunk.vector_store_id, Chunk.file_id, Chunk.position)).all()
    return Counter((s, f, p) for s, f, p in rows)


def statuses(database_url: str) -> Counter[str]:
    with engine_for(database_url) as engine, engine.connect() as conn:
        rows = conn.execute(
            select(VectorStoreFile.status, func.count()).group_by(VectorStoreFile.status)
        ).all()
    return Counter({status: count for status, count in rows})


def test_killed_during_ingestion_every_file_ends(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    migrate(database_url)
    env = {**BASE_ENV, "RUN_LEASE_SECONDS": "2", "FILES_DIR": str(tmp_path / "files")}
    script = {"responses": [], "embedding_dims": EMBEDDING_DIMS, "embedding_delay": 0.5}
    with run_openai_upstream(script) as upstream:
        env["SOVEREIGN_PLAYGROUND_URL"] = upstream.url
        first = start_assistants(database_url, tmp_path / "first.log", env=env)
        try:
            client = sdk(first.base_url)
            ids = [
                client.files.create(file=(f"log{i}.txt", long_text(i)), purpose="assistants").id
                for i in range(4)
            ]
            store = client.vector_stores.create(file_ids=ids)
            # Killed while embedding: at least one file has been claimed, none finished.
            wait_until(
                lambda: any(r["path"].endswith("/embeddings") for r in upstream.requests()), 20
            )
            assert statuses(database_url)["completed"] == 0
        finally:
            first.kill()
        assert statuses(database_url)["in_progress"] == 4
        second = start_assistants(database_url, tmp_path / "second.log", env=env)
        try:
            client = sdk(second.base_url)
            wait_until(lambda: statuses(database_url)["in_progress"] == 0, 90)
            assert statuses(database_url) == Counter({"completed": 4})
            positions = chunk_positions(database_url)
            assert max(positions.values()) == 1  # no chunk stored twice
            per_file = Counter(f for _, f, _ in positions)
            assert set(per_file) == set(ids) and min(per_file.values()) > 1
            hits = list(client.vector_stores.search(store.id, query="tanker berth pilot"))
            assert hits and {h.filename for h in hits} <= {f"log{i}.txt" for i in range(4)}
        finally:
            second.stop()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with fresh_postgres() as url:  # skips without TEST_DATABASE_URL
        yield url


def test_two_replicas_ingest_a_batch_once(postgres_url: str, tmp_path: Path) -> None:
    migrate(postgres_url)
    shared = tmp_path / "files"  # replicas on one PostgreSQL share FILES_DIR
    env = {**BASE_ENV, "FILES_DIR": str(shared), "INGESTION_CONCURRENCY": "2"}
    script = {"responses": [], "embedding_dims": EMBEDDING_DIMS, "embedding_delay": 0.05}
    with run_openai_upstream(script) as upstream:
        env["SOVEREIGN_PLAYGROUND_URL"] = upstream.url
        services = [
            start_assistants(postgres_url, tmp_path / f"{name}.log", env=env) for name in "ab"
        ]
        try:
            client = sdk(services[0].base_url)
            ids = [
                client.files.create(file=(f"doc{i}.txt", long_text(i, 40)), purpose="assistants").id
                for i in range(12)
            ]
            store = client.vector_stores.create()
            batch = sdk(services[1].base_url).vector_stores.file_batches.create_and_poll(
                store.id, file_ids=ids, poll_interval_ms=200
            )
            assert batch.status == "completed" and batch.file_counts.completed == 12
            positions = chunk_positions(postgres_url)
            assert max(positions.values()) == 1
            embedded = sum(
                len(r["body"]["input"])
                for r in upstream.requests()
                if r["path"].endswith("/embeddings")
            )
            assert embedded == len(positions)  # each chunk embedded once, by one replica
            logs = [s.log() for s in services]
            assert all("ingested" in log for log in logs), "both replicas should share the work"
        finally:
            for service in services:
                service.stop()
