"""Search over a store larger than the vector index loads at once and large enough for
its vector ranking to run on a thread (written straight into the database, as ingestion
would have), on SQLite and PostgreSQL: each ranking alone finds
the one chunk that answers, with its own file's name and attributes, and a store that
changes is read again."""

from __future__ import annotations

import random

import httpx
import numpy as np
import openai
from sqlalchemy import insert, text, update

from services.assistants.tables import Chunk, File, VectorStore, VectorStoreFile
from services.assistants.vector_stores.index import LOAD_BATCH
from services.assistants.vector_stores.search import THREAD_FROM_CHUNKS
from tests.assistants.rows import engine_for
from tests.fakes.process import FakeUpstream
from tests.retrieval.conftest import EMBEDDING_DIMS

CHUNKS = max(2 * LOAD_BATCH, THREAD_FROM_CHUNKS) + 1_000
PER_FILE = 500
ANSWER = "The lighthouse keeper of Vardø logs the aurora every winter night."


def embedding(upstream: FakeUpstream, text: str) -> np.ndarray:
    response = httpx.post(
        f"{upstream.url}/v1/embeddings", json={"model": "fake-embedder", "input": [text]}
    )
    return np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)


def fill(database_url: str, store_id: str, answer_vector: np.ndarray, answer_at: int) -> str:
    """CHUNKS chunks of filler in files of PER_FILE; the one at ``answer_at`` is ANSWER.
    Returns the file id holding it."""
    rng = np.random.default_rng(5)
    words = random.Random(5)
    filler = ["copper", "harbour", "ledger", "orchard", "quarry", "saddle", "timber", "wagon"]
    holder = ""
    with engine_for(database_url) as engine, engine.begin() as conn:
        for start in range(0, CHUNKS, PER_FILE):
            file_id = f"file-large{start}"
            conn.execute(
                insert(File).values(
                    id=file_id, created_at=0, metadata_={}, filename=f"part{start}.txt",
                    purpose="assistants", bytes=0, status="processed",
                )
            )  # fmt: skip
            conn.execute(
                insert(VectorStoreFile).values(
                    id=file_id, vector_store_id=store_id, created_at=0, status="completed",
                    usage_bytes=0, chunking_strategy={}, attempts=0,
                    attributes={"part": start},
                )
            )  # fmt: skip
            vectors = rng.standard_normal((PER_FILE, EMBEDDING_DIMS)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = []
            for i in range(PER_FILE):
                body = " ".join(words.choice(filler) for _ in range(30))
                vector = vectors[i]
                if start + i == answer_at:
                    body, vector, holder = ANSWER, answer_vector, file_id
                rows.append(
                    {
                        "vector_store_id": store_id,
                        "file_id": file_id,
                        "position": i,
                        "text": body,
                        "tokens": 30,
                        "embedding": vector.tobytes(),
                    }
                )
            conn.execute(insert(Chunk), rows)
        conn.execute(
            update(VectorStore)
            .where(VectorStore.id == store_id)
            .values(chunks_version=VectorStore.chunks_version + 1)
        )
    return holder


def test_a_store_past_the_load_batch_is_searched_whole(
    client: openai.OpenAI, database_url: str, upstream: FakeUpstream
) -> None:
    store = client.vector_stores.create(name="large")
    question = "Who logs the aurora at the Vardø lighthouse?"
    answer_at = CHUNKS - 700  # in the last batch the index reads
    holder = fill(database_url, store.id, embedding(upstream, question), answer_at)

    by_vector = client.vector_stores.search(
        store.id, query=question, ranking_options={"ranker": "none"}, max_num_results=3
    ).data
    part = int(holder.removeprefix("file-large"))
    assert by_vector[0].file_id == holder
    assert by_vector[0].filename == f"part{part}.txt"
    assert by_vector[0].attributes == {"part": part}
    assert by_vector[0].content[0].text == ANSWER

    # Keyword ranking alone (a query whose embedding is unrelated): FTS5 / full text.
    by_words = client.vector_stores.search(
        store.id,
        query="lighthouse aurora",
        ranking_options={"hybrid_search": {"embedding_weight": 0, "text_weight": 1}},
        max_num_results=3,
    ).data
    assert by_words[0].content[0].text == ANSWER

    # A filter on attributes leaves the answer out when its file does not match.
    filtered = client.vector_stores.search(
        store.id,
        query=question,
        filters={"type": "ne", "key": "part", "value": part},
    ).data
    assert filtered and all(hit.file_id != holder for hit in filtered)

    # The store changes (its answer goes): the index is read again, the answer is gone.
    with engine_for(database_url) as engine, engine.begin() as conn:
        conn.execute(
            Chunk.__table__.delete().where(Chunk.vector_store_id == store.id, Chunk.text == ANSWER)
        )
        conn.execute(
            update(VectorStore)
            .where(VectorStore.id == store.id)
            .values(chunks_version=VectorStore.chunks_version + 1)
        )
    again = client.vector_stores.search(store.id, query=question, max_num_results=5).data
    assert again and all(hit.content[0].text != ANSWER for hit in again)
    # The keyword index lost it too (FTS5's delete trigger; chunk_keywords' foreign key).
    with engine_for(database_url) as engine, engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            left = conn.execute(
                text("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH 'lighthouse'")
            ).scalar_one()
        else:
            left = conn.execute(
                text(
                    "SELECT count(*) FROM chunk_keywords "
                    "WHERE text_search @@ to_tsquery('english', 'lighthouse')"
                )
            ).scalar_one()
            indexed = conn.execute(
                text("SELECT count(*) FROM chunk_keywords WHERE vector_store_id = :s"),
                {"s": store.id},
            ).scalar_one()
            assert indexed == CHUNKS - 1
    assert left == 0
