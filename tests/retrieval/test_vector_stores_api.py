"""Vector stores through the official SDK (``client.vector_stores`` and its files and
file batches, upload_and_poll, search), on SQLite and PostgreSQL, checked against the
reference schemas."""

from __future__ import annotations

import openai
import pytest
from sqlalchemy import update

from services.assistants.tables import VectorStore
from tests.assistants.rows import engine_for
from tests.retrieval.conftest import DOCUMENTS, upload
from tests.support.openapi import ConformanceLog


@pytest.fixture(scope="module")
def corpus(client: openai.OpenAI):
    """One store holding the three documents, ingested."""
    files = {name: upload(client, name, text) for name, text in DOCUMENTS.items()}
    store = client.vector_stores.create(name="science", metadata={"team": "desk"})
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id,
        files=[
            {"file_id": f.id, "attributes": {"topic": name.split(".")[0], "year": 2020 + i}}
            for i, (name, f) in enumerate(files.items())
        ],
        poll_interval_ms=100,
    )
    assert batch.status == "completed", batch
    assert batch.file_counts.completed == 3
    return store, files


def test_store_lifecycle(client: openai.OpenAI, corpus, conformance: ConformanceLog) -> None:
    store, files = corpus
    fetched = client.vector_stores.retrieve(store.id)
    assert fetched.status == "completed"
    assert fetched.file_counts.completed == 3 and fetched.file_counts.total == 3
    assert fetched.usage_bytes > 0
    assert fetched.metadata == {"team": "desk"} and fetched.name == "science"
    renamed = client.vector_stores.update(
        store.id, name="nature", expires_after={"anchor": "last_active_at", "days": 7}
    )
    assert renamed.name == "nature"
    assert renamed.expires_at == renamed.last_active_at + 7 * 86400
    assert store.id in [s.id for s in client.vector_stores.list()]
    listed = client.vector_stores.files.list(store.id, filter="completed")
    assert {f.id for f in listed} == {f.id for f in files.values()}
    assert {"VectorStoreObject", "VectorStoreFileBatchObject"} <= conformance.schemas()


def test_search_finds_the_right_document(client: openai.OpenAI, corpus) -> None:
    store, files = corpus
    page = client.vector_stores.search(store.id, query="Which volcano erupts lava in Sicily?")
    results = list(page)
    assert results[0].file_id == files["volcanoes.md"].id
    assert results[0].filename == "volcanoes.md"
    assert "Etna" in results[0].content[0].text
    assert all(0 <= r.score <= 1 for r in results)
    assert results[0].score >= results[-1].score
    assert results[0].attributes["topic"] == "volcanoes"


def test_search_options(client: openai.OpenAI, corpus) -> None:
    store, files = corpus
    one = list(client.vector_stores.search(store.id, query="moon tides", max_num_results=1))
    assert len(one) == 1 and one[0].file_id == files["tides.txt"].id
    filtered = list(
        client.vector_stores.search(
            store.id,
            query="moon tides",
            filters={"type": "eq", "key": "topic", "value": "baking"},
        )
    )
    assert {r.file_id for r in filtered} == {files["baking.txt"].id}
    newer = list(
        client.vector_stores.search(
            store.id,
            query=["bread", "lava"],
            filters={
                "type": "and",
                "filters": [
                    {"type": "gte", "key": "year", "value": 2021},
                    {"type": "ne", "key": "topic", "value": "tides"},
                ],
            },
            rewrite_query=True,
        )
    )
    assert {r.file_id for r in newer} == {files["baking.txt"].id}
    strict = list(
        client.vector_stores.search(
            store.id, query="sourdough starter", ranking_options={"score_threshold": 0.99}
        )
    )
    assert [r.file_id for r in strict] == [files["baking.txt"].id]


def test_store_file_attributes_content_and_removal(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="single")
    f = upload(client, "tides.txt", DOCUMENTS["tides.txt"])
    added = client.vector_stores.files.create_and_poll(
        file_id=f.id, vector_store_id=store.id, poll_interval_ms=100
    )
    assert added.status == "completed" and added.last_error is None
    assert added.chunking_strategy.type == "static"
    assert added.chunking_strategy.static.max_chunk_size_tokens == 800
    updated = client.vector_stores.files.update(
        file_id=f.id, vector_store_id=store.id, attributes={"source": "almanac"}
    )
    assert updated.attributes == {"source": "almanac"}
    content = list(client.vector_stores.files.content(file_id=f.id, vector_store_id=store.id))
    assert "gravitational pull" in content[0].text
    client.vector_stores.files.delete(file_id=f.id, vector_store_id=store.id)
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0
    assert list(client.vector_stores.search(store.id, query="tides moon")) == []
    assert client.files.retrieve(f.id).id == f.id  # the file itself stays


def test_upload_and_poll_with_static_chunking(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="chunky")
    long_text = " ".join(f"Sentence {i} is about harbour cranes and cargo." for i in range(300))
    done = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("cranes.txt", long_text.encode()),
        chunking_strategy={
            "type": "static",
            "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 50},
        },
        poll_interval_ms=100,
    )
    assert done.status == "completed"
    assert done.chunking_strategy.static.chunk_overlap_tokens == 50
    hits = list(client.vector_stores.search(store.id, query="cargo cranes", max_num_results=50))
    assert len(hits) > 10  # 300 sentences of ~10 tokens in 200-token chunks


def test_deleting_a_file_removes_it_from_every_store(client: openai.OpenAI) -> None:
    f = upload(client, "volcanoes.md", DOCUMENTS["volcanoes.md"])
    first = client.vector_stores.create(file_ids=[f.id])
    second = client.vector_stores.create(file_ids=[f.id])
    for store in (first, second):
        client.vector_stores.files.poll(f.id, vector_store_id=store.id, poll_interval_ms=100)
    client.files.delete(f.id)
    for store in (first, second):
        assert client.vector_stores.retrieve(store.id).file_counts.total == 0
        assert list(client.vector_stores.search(store.id, query="volcano lava")) == []


def test_deleting_a_store_clears_references(client: openai.OpenAI) -> None:
    store = client.vector_stores.create(name="doomed")
    assistant = client.beta.assistants.create(
        model="m",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    deleted = client.vector_stores.delete(store.id)
    assert deleted.deleted
    again = client.beta.assistants.retrieve(assistant.id)
    assert again.tool_resources.file_search.vector_store_ids == []
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_bad_requests(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        client.vector_stores.create(file_ids=["file-nope"])
    assert unknown.value.body["param"] == "file_ids[0]"
    store = client.vector_stores.create()
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(store.id, query="x", max_num_results=51)
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.files.create(
            store.id,
            file_id="file-x",
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 80},
            },
        )
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.search("vs_missing", query="x")


def expire(database_url: str, store_id: str) -> None:
    """The store's expiry passes (as days going by would)."""
    with engine_for(database_url) as engine, engine.begin() as conn:
        conn.execute(update(VectorStore).where(VectorStore.id == store_id).values(expires_at=1_000))


def test_expired_store_reads_expired_and_cannot_be_used(
    client: openai.OpenAI, database_url: str, conformance: ConformanceLog
) -> None:
    kept = upload(client, "tides.txt", DOCUMENTS["tides.txt"])
    store = client.vector_stores.create(
        name="short-lived", expires_after={"anchor": "last_active_at", "days": 1}
    )
    client.vector_stores.files.create_and_poll(
        file_id=kept.id, vector_store_id=store.id, poll_interval_ms=100
    )
    store = client.vector_stores.retrieve(store.id)
    assert store.status == "completed" and store.expires_at == store.last_active_at + 86400
    assert client.vector_stores.search(store.id, query="moon tides").data
    expire(database_url, store.id)
    assert client.vector_stores.retrieve(store.id).status == "expired"
    listed = {s.id: s for s in client.vector_stores.list(limit=100)}
    assert listed[store.id].status == "expired"

    with pytest.raises(openai.BadRequestError) as searched:
        client.vector_stores.search(store.id, query="moon tides")
    error = searched.value.body
    assert error["code"] == "vector_store_expired" and error["param"] == "vector_store_id"
    assert store.id in error["message"] and "expired" in error["message"]
    assert searched.value.response.json()["error"]["type"] == "invalid_request_error"

    other = upload(client, "baking.txt", DOCUMENTS["baking.txt"])
    with pytest.raises(openai.BadRequestError) as added:
        client.vector_stores.files.create(store.id, file_id=other.id)
    assert added.value.body["code"] == "vector_store_expired"
    with pytest.raises(openai.BadRequestError) as batched:
        client.vector_stores.file_batches.create(store.id, file_ids=[other.id])
    assert batched.value.body["code"] == "vector_store_expired"

    # Nothing brings it back: a new expiry policy neither, and its last use stays put.
    before = client.vector_stores.retrieve(store.id)
    renamed = client.vector_stores.update(
        store.id, name="renamed", expires_after={"anchor": "last_active_at", "days": 30}
    )
    assert renamed.status == "expired" and renamed.name == "renamed"
    assert renamed.last_active_at == before.last_active_at
    assert renamed.expires_at == 1_000

    tool_resources = {"file_search": {"vector_store_ids": [store.id]}}
    with pytest.raises(openai.BadRequestError) as attached:
        client.beta.assistants.create(model="m", tool_resources=tool_resources)
    assert attached.value.body["code"] == "vector_store_expired"
    assert attached.value.body["param"] == "tool_resources.file_search.vector_store_ids[0]"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.create(tool_resources=tool_resources)
    # Deleting it still works, as for any store.
    assert client.vector_stores.delete(store.id).deleted
    checked = {(path, status) for _, path, status, _ in conformance.checked}
    assert (f"/v1/vector_stores/{store.id}/search", 400) in checked


def test_use_moves_last_active_at_and_the_expiry_with_it(
    client: openai.OpenAI, database_url: str
) -> None:
    kept = upload(client, "volcanoes.md", DOCUMENTS["volcanoes.md"])
    store = client.vector_stores.create(expires_after={"anchor": "last_active_at", "days": 2})
    client.vector_stores.files.create_and_poll(
        file_id=kept.id, vector_store_id=store.id, poll_interval_ms=100
    )
    store = client.vector_stores.retrieve(store.id)
    # Last used an hour ago: it would expire an hour before two days from now.
    hour_ago = store.last_active_at - 3600
    with engine_for(database_url) as engine, engine.begin() as conn:
        conn.execute(
            update(VectorStore)
            .where(VectorStore.id == store.id)
            .values(last_active_at=hour_ago, expires_at=hour_ago + 2 * 86400)
        )
    assert client.vector_stores.retrieve(store.id).expires_at == hour_ago + 2 * 86400
    client.vector_stores.search(store.id, query="lava")
    used = client.vector_stores.retrieve(store.id)
    assert used.last_active_at >= store.last_active_at
    assert used.expires_at == used.last_active_at + 2 * 86400
    assert used.status == "completed"

    # Ingesting a file is activity too.
    with engine_for(database_url) as engine, engine.begin() as conn:
        conn.execute(
            update(VectorStore)
            .where(VectorStore.id == store.id)
            .values(last_active_at=hour_ago, expires_at=hour_ago + 2 * 86400)
        )
    more = upload(client, "baking.txt", DOCUMENTS["baking.txt"])
    client.vector_stores.files.create_and_poll(
        file_id=more.id, vector_store_id=store.id, poll_interval_ms=100
    )
    used = client.vector_stores.retrieve(store.id)
    assert used.last_active_at > hour_ago
    assert used.expires_at == used.last_active_at + 2 * 86400
