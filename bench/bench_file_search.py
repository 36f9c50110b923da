"""Benchmark file search: ingestion throughput, search latency, memory and recall.

    .venv/bin/python bench/bench_file_search.py [--corpus-mb 10] [--queries 200]
        [--database sqlite|postgresql]   # postgresql: a fresh database on TEST_DATABASE_URL
        [--embedded]                     # the embedded runtime's bundled embedder, through
                                         # sovereign, both started here as child processes
        [--upstream URL --model NAME]    # any OpenAI-compatible embedder (e.g. sovereign);
                                         # default: the scripted upstream's hashed
                                         # bag-of-words vectors

Prints, for the assistants service as a real process on SQLite (or PostgreSQL):
- ingestion of a generated corpus (>= --corpus-mb) through POST /v1/files and a vector
  store: chunks/s and MB/min (with the scripted upstream this measures the service's own
  pipeline; the embedded model's is measured with --embedded, a corpus of 1-2 MB
  being enough for it: at ~8 chunks/s on this machine 10 MB takes about half an hour);
- search latency p50/p99 through POST /v1/vector_stores/{id}/search on stores of 10,000
  and 100,000 chunks, beside the same search on a store of 100 chunks (the baseline), with
  queries of 3-8 words of the searched store's own vocabulary (each word is in about 3% of
  its chunks, so a query matches thousands of chunks by keyword); then the small store
  again, beside the others;
- the service's resident memory per 100,000 chunks held for search;
- recall@5 on a labelled question set (one fact document per made-up company, questions
  worded differently from the documents).
Targets: search p99 < 50 ms at 100,000 chunks, recall@5 >= 0.9, >= 30 chunks/s embedded.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_upstream import run_openai_upstream  # noqa: E402
from tests.fakes.sovereign import run_embedded, run_sovereign  # noqa: E402
from tests.support.processes import migrate, start_assistants  # noqa: E402

KEY = {"Authorization": "Bearer test-key"}
TARGETS = {"p99_ms": 50.0, "recall": 0.9, "chunks_per_s": 30.0}
SIZES = (10_000, 100_000)
EMBEDDED_MODEL = "all-minilm-l6-v2"

COMPANIES = [
    "Arvenco", "Belmora", "Cindral", "Dovetail Gears", "Elskar", "Fenwick Optics", "Galdor",
    "Hestia Mills", "Ivoran", "Jorvik Salt", "Kestrel Air", "Lumara", "Mossgiel", "Norrland Ore",
    "Obsidian Loom", "Pellucid", "Quarrystone", "Rivenhall", "Saltmarsh Foods", "Tamberlane",
    "Umbrel", "Vantor", "Wexford Glass", "Xylo Labs", "Yarrow Seeds", "Zephyrine",
]  # fmt: skip
CITIES = [
    "Lisbon", "Tromsø", "Porto", "Graz", "Tampere", "Ghent", "Bergen", "Split", "Aarhus",
    "Lyon", "Krakow", "Bilbao", "Utrecht", "Turku", "Malmö", "Brno", "Leipzig", "Cork",
    "Basel", "Genoa", "Riga", "Tallinn", "Vilnius", "Ljubljana", "Zadar", "Nantes",
]  # fmt: skip
PRODUCTS = [
    "ceramic water filters", "carbon bicycle frames", "solar roof tiles", "oat milk",
    "hearing aids", "wooden toys", "sailcloth", "industrial enzymes", "violin strings",
    "drone batteries", "insulin pens", "sea salt", "telescopes", "wind turbine blades",
    "wool blankets", "espresso machines", "lab centrifuges", "cargo bikes", "seed drills",
    "glass bottles", "fire extinguishers", "ski bindings", "pipe organs", "heat pumps",
    "canvas tents", "printer ink",
]  # fmt: skip


def labelled_set() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Documents (name -> text) and questions (question, the document that answers it)."""
    rng = random.Random(7)
    cities, products = CITIES[:], PRODUCTS[:]
    rng.shuffle(cities)
    rng.shuffle(products)
    documents, questions = {}, []
    for i, company in enumerate(COMPANIES):
        name = f"{company.lower().replace(' ', '_')}.md"
        founded = 1950 + (i * 7) % 70
        documents[name] = (
            f"# {company}\n\n{company} was founded in {founded} and is headquartered in "
            f"{cities[i]}. The company manufactures {products[i]} and exports them to "
            f"forty countries. Its annual report lists {100 + i * 13} employees."
        )
        questions += [
            (f"Which city is {company} based in?", name),
            (f"What does {company} make?", name),
            (f"Which firm produces {products[i]}?", name),
        ]
    return documents, questions


def corpus_file(index: int, size: int, rng: random.Random, vocabulary: list[str]) -> bytes:
    words: list[str] = []
    length = 0
    while length < size:
        sentence = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(8, 20)))
        words.append(sentence.capitalize() + ".")
        length += len(sentence) + 2
    return f"# Report {index}\n\n".encode() + " ".join(words).encode()


def vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(size)]


def wait_store(http: httpx.Client, store_id: str, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = http.get(f"/vector_stores/{store_id}").json()
        if store["file_counts"]["in_progress"] == 0:
            return store
        time.sleep(0.2)
    raise TimeoutError("ingestion did not finish")


def bench_ingestion(http: httpx.Client, megabytes: float, db: Engine) -> tuple[float, float]:
    rng = random.Random(1)
    words = vocabulary(rng)
    file_size = 512 * 1024
    count = max(1, int(megabytes * 1024 * 1024 / file_size) + 1)
    ids, total = [], 0
    for i in range(count):
        data = corpus_file(i, file_size, rng, words)
        total += len(data)
        response = http.post(
            "/files", files={"file": (f"report{i}.md", data)}, data={"purpose": "assistants"}
        )
        ids.append(response.json()["id"])
    started = time.perf_counter()
    store = http.post("/vector_stores", json={"name": "corpus", "file_ids": ids}).json()
    done = wait_store(http, store["id"])
    elapsed = time.perf_counter() - started
    assert done["file_counts"]["completed"] == count, done["file_counts"]
    with db.connect() as conn:
        chunks = conn.execute(
            text("SELECT count(*) FROM chunks WHERE vector_store_id = :store"),
            {"store": store["id"]},
        ).scalar_one()
    print(
        f"ingestion: {total / 1e6:.1f} MB in {count} files -> {chunks} chunks in {elapsed:.1f} s: "
        f"{chunks / elapsed:.1f} chunks/s, {total / 1e6 / (elapsed / 60):.1f} MB/min "
        f"(target >= {TARGETS['chunks_per_s']:.0f} chunks/s with the embedded model)"
    )
    return chunks / elapsed, total / 1e6 / (elapsed / 60)


def bench_recall(http: httpx.Client) -> float:
    documents, questions = labelled_set()
    ids = {}
    for name, body in documents.items():
        ids[name] = http.post(
            "/files", files={"file": (name, body.encode())}, data={"purpose": "assistants"}
        ).json()["id"]
    store = http.post("/vector_stores", json={"file_ids": list(ids.values())}).json()
    wait_store(http, store["id"])
    found = 0
    for question, answer in questions:
        page = http.post(
            f"/vector_stores/{store['id']}/search", json={"query": question, "max_num_results": 5}
        ).json()
        found += ids[answer] in [hit["file_id"] for hit in page["data"]]
    recall = found / len(questions)
    print(
        f"recall@5: {recall:.3f} on {len(questions)} questions over {len(documents)} documents "
        f"(target >= {TARGETS['recall']})"
    )
    return recall


def synthetic_store(http: httpx.Client, db: Engine, chunks: int, dims: int) -> str:
    """A store of ``chunks`` chunks written straight into the database (random unit
    vectors, text from a 5,000-word vocabulary of its own), in files of 100 chunks."""
    rng = random.Random(chunks)
    np_rng = np.random.default_rng(chunks)
    words = vocabulary(rng)
    store_id = http.post("/vector_stores", json={"name": f"synthetic {chunks}"}).json()["id"]
    now = int(time.time())
    with db.begin() as conn:
        for start in range(0, chunks, 100):
            file_id = f"file-bench{chunks}x{start}"
            conn.execute(
                text(
                    "INSERT INTO files (id, created_at, metadata, filename, purpose, bytes, "
                    "status) VALUES (:id, :now, '{}', :name, 'assistants', 0, 'processed')"
                ),
                {"id": file_id, "now": now, "name": f"part{start}.txt"},
            )
            conn.execute(
                text(
                    "INSERT INTO vector_store_files (id, vector_store_id, created_at, status, "
                    "usage_bytes, chunking_strategy, attempts) "
                    "VALUES (:id, :store, :now, 'completed', 0, '{}', 0)"
                ),
                {"id": file_id, "store": store_id, "now": now},
            )
            n = min(100, chunks - start)
            vectors = np_rng.standard_normal((n, dims)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            conn.execute(
                text(
                    "INSERT INTO chunks (vector_store_id, file_id, position, text, tokens, "
                    "embedding) VALUES (:store, :file, :position, :text, 200, :embedding)"
                ),
                [
                    {
                        "store": store_id,
                        "file": file_id,
                        "position": i,
                        "text": " ".join(rng.choice(words) for _ in range(150)),
                        "embedding": vectors[i].tobytes(),
                    }
                    for i in range(n)
                ],
            )
        conn.execute(
            text("UPDATE vector_stores SET chunks_version = chunks_version + 1 WHERE id = :store"),
            {"store": store_id},
        )
    if db.dialect.name == "postgresql":
        with db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    return store_id


def store_queries(chunks: int, count: int) -> list[str]:
    """Queries of 3-8 words from the vocabulary of the synthetic store of ``chunks``."""
    words = vocabulary(random.Random(chunks))
    rng = random.Random(3)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) for _ in range(count)]


def timed_searches(http: httpx.Client, store_id: str, queries: list[str]) -> list[float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        response = http.post(f"/vector_stores/{store_id}/search", json={"query": query})
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file in ``folder``, or a new PostgreSQL database on
    TEST_DATABASE_URL's server, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    admin = os.environ.get("TEST_DATABASE_URL")
    if not admin:
        raise SystemExit("--database postgresql needs TEST_DATABASE_URL (a server to use)")
    url = make_url(admin).set(drivername="postgresql")
    name = f"bench_file_search_{uuid.uuid4().hex[:8]}"
    conninfo = url.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sync_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed)


def embedder(args: argparse.Namespace, stack: ExitStack) -> tuple[str, str, str]:
    """(base URL, model, description) of the embedder the service is pointed at."""
    if args.embedded:
        runtime = stack.enter_context(run_embedded())
        sovereign = stack.enter_context(
            run_sovereign(
                env={
                    "SOVEREIGN_BACKEND_URL": runtime.base_url,
                    "SOVEREIGN_EMBEDDING_MODEL": EMBEDDED_MODEL,
                }
            )
        )
        return sovereign.base_url, "default-embedding", f"embedded runtime ({EMBEDDED_MODEL})"
    if args.upstream:
        return args.upstream, args.model, args.upstream
    fake = stack.enter_context(run_openai_upstream({"responses": [], "embedding_dims": args.dims}))
    return fake.url, args.model, "scripted upstream (hashed bag-of-words)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-mb", type=float, default=10.0)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--embedded", action="store_true", help="the embedded runtime's embedder via sovereign"
    )
    parser.add_argument("--upstream", help="an OpenAI-compatible base URL (e.g. sovereign)")
    parser.add_argument("--model", default="fake-embedder", help="EMBEDDING_MODEL")
    parser.add_argument("--dims", type=int, default=384, help="scripted upstream's dimensions")
    parser.add_argument(
        "--skip-ingestion", action="store_true", help="only recall and search latency"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        url = stack.enter_context(database(args.database, folder))
        migrate(url)
        db = sync_engine(url)
        upstream, model, source = embedder(args, stack)
        print(f"embeddings: {source}, model {model}; database: {args.database}")
        env = {"SOVEREIGN_PLAYGROUND_URL": upstream, "EMBEDDING_MODEL": model}
        service = start_assistants(url, folder / "assistants.log", env=env)
        try:
            http = httpx.Client(base_url=f"{service.base_url}/v1", headers=KEY, timeout=600)
            process = psutil.Process(service.proc.pid)
            if not args.skip_ingestion:
                bench_ingestion(http, args.corpus_mb, db)
            recall = bench_recall(http)
            with db.connect() as conn:
                blob = conn.execute(text("SELECT embedding FROM chunks LIMIT 1")).scalar_one()
            dims = len(blob) // 4
            small = synthetic_store(http, db, 100, dims)
            queries = store_queries(100, args.queries)
            timed_searches(http, small, queries[:10])
            baseline = timed_searches(http, small, queries)
            print(
                f"baseline (100 chunks): p50 {percentile(baseline, 0.5):.1f} ms, "
                f"p99 {percentile(baseline, 0.99):.1f} ms"
            )
            p99_big = 0.0
            for size in SIZES:
                store = synthetic_store(http, db, size, dims)
                queries = store_queries(size, args.queries)
                before = process.memory_info().rss
                timed_searches(http, store, queries[:5])  # loads the store's vectors
                grown = process.memory_info().rss - before
                times = timed_searches(http, store, queries)
                p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
                p99_big = p99
                print(
                    f"search at {size:,} chunks ({dims} dims): p50 {p50:.1f} ms, "
                    f"p99 {p99:.1f} ms ({p99 / percentile(baseline, 0.99):.1f}x baseline p99); "
                    f"memory {grown / 1e6 * 100_000 / size:.0f} MB per 100,000 chunks"
                )
            beside = timed_searches(http, small, store_queries(100, args.queries))
            print(
                f"search at 100 chunks beside {sum(SIZES):,} of other stores: "
                f"p50 {percentile(beside, 0.5):.1f} ms, p99 {percentile(beside, 0.99):.1f} ms"
            )
            print(
                f"targets: p99 at 100,000 < {TARGETS['p99_ms']:.0f} ms: "
                f"{'met' if p99_big < TARGETS['p99_ms'] else 'NOT met'}; recall@5 >= "
                f"{TARGETS['recall']}: {'met' if recall >= TARGETS['recall'] else 'NOT met'}"
            )
        finally:
            service.stop()
            db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
