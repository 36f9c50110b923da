"""file_search end to end on the real models: the embedded runtime (gemma-3-270m and its
default embedder, the static table distilled from MiniLM) behind sovereign, the assistants
service ingesting and searching through it, and a run and a response that retrieve before
the model answers."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.sovereign import Sovereign, run_embedded, run_sovereign
from tests.retrieval.conftest import DOCUMENTS, upload
from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None
        or importlib.util.find_spec("onnxruntime") is None,
        reason="the embedded runtime needs the extra: pip install -e '.[embedded]'",
    ),
]


@pytest.fixture(scope="module")
def sovereign() -> Iterator[Sovereign]:
    with (
        run_embedded() as runtime,
        run_sovereign(env={"SOVEREIGN_BACKEND_URL": runtime.base_url}) as proxy,
    ):
        yield proxy


@pytest.fixture(scope="module")
def client(
    sovereign: Sovereign, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[openai.OpenAI]:
    directory: Path = tmp_path_factory.mktemp("real-embedder")
    env = {
        "SOVEREIGN_PLAYGROUND_URL": sovereign.url,
        "EMBEDDING_MODEL": "all-minilm-l6-v2-static",
        "UPSTREAM_FIRST_TOKEN_TIMEOUT": "120",
    }
    service: ServiceProcess
    with run_assistants(sqlite_url(directory), directory / "assistants.log", env=env) as service:
        yield openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="test-key", max_retries=0)


def test_ingest_search_and_run_on_the_real_models(client: openai.OpenAI) -> None:
    files = {name: upload(client, name, text) for name, text in DOCUMENTS.items()}
    store = client.vector_stores.create(name="kb", file_ids=[f.id for f in files.values()])
    deadline = time.monotonic() + 180
    while (store := client.vector_stores.retrieve(store.id)).file_counts.in_progress:
        assert time.monotonic() < deadline, "ingestion did not finish"
        time.sleep(0.5)
    assert store.file_counts.completed == len(DOCUMENTS), store.file_counts

    # The embedder carries meaning: a question sharing no keyword finds the right file.
    hits = client.vector_stores.search(store.id, query="Where does molten rock come out?").data
    assert hits[0].filename == "volcanoes.md", [h.filename for h in hits]

    assistant = client.beta.assistants.create(
        model="gemma-3-270m",
        instructions="Answer from the files, briefly.",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
        temperature=0,
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Which volcano is the most active in Europe?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=200
    )
    assert run.status == "completed", run.last_error
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    search = steps[0].step_details.tool_calls[0]
    assert search.type == "file_search"
    assert search.file_search.results[0].file_id == files["volcanoes.md"].id
    reply = client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant" and reply.content[0].text.value.strip()

    # The same store through Responses: searched before the real model answers.
    response = client.responses.create(
        model="gemma-3-270m",
        instructions="Answer from the files, briefly.",
        input="Which volcano is the most active in Europe?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        include=["file_search_call.results"],
        temperature=0,
    )
    assert response.status == "completed", response.error
    first = response.output[0]
    assert first.type == "file_search_call" and first.status == "completed"
    assert first.results[0].file_id == files["volcanoes.md"].id
    # The model may search again with its own queries; its answer comes last.
    assert response.output[-1].type == "message" and response.output_text.strip()
