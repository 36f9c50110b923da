"""file_search in Responses through the official SDK, on SQLite and PostgreSQL: the search
before the model answers and the model's own searches, as file_search_call items (results
only when included), file_citation annotations at the right offsets, the streamed events,
and the errors; every JSON answer and event checked against the Responses reference."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from sqlalchemy import update

from services.assistants.tables import VectorStore
from tests.assistants.rows import engine_for
from tests.fakes.process import FakeUpstream
from tests.responses.conftest import raw_events, upstream_messages
from tests.retrieval.conftest import DOCUMENTS, EMBEDDING_DIMS, upload
from tests.support.openapi_responses import Checked, assert_matches
from tests.support.processes import ServiceProcess

ETNA = "Etna is in Sicily [1], where lava flows daily [1]."
SCRIPT = {
    "embedding_dims": EMBEDDING_DIMS,
    "responses": [
        {"match": "Etna polled", "text": ETNA, "chunks": 9},
        {"match": "Etna streamed", "text": ETNA, "chunks": 13},
        {"match": "Etna raw", "text": ETNA, "chunks": 5},
        {
            "match": "bread own search",
            "tool_calls": [
                {"name": "file_search", "arguments": {"queries": ["moon tides ocean gravity"]}}
            ],
        },
        {
            "match": "bread own search",
            "text": "Bread needs a starter [1]; tides follow the moon [2].",
        },
        {"match": "filtered volcano", "text": "Nothing about it [1]."},
        {"match": "earlier turn", "text": "Etna is in Sicily [1]."},
        {"match": "later turn", "text": "As I said."},
        {"match": "one search only", "text": "Fine [1]."},
    ],
}
SERVICE_ENV = {"EMBEDDING_MODEL": "fake-embedder"}
RESULTS = "file_search_call.results"


@pytest.fixture(scope="module")
def knowledge(client: openai.OpenAI) -> tuple[Any, dict[str, Any]]:
    files = {name: upload(client, name, text) for name, text in DOCUMENTS.items()}
    store = client.vector_stores.create(name="kb", file_ids=[f.id for f in files.values()])
    client.vector_stores.files.update(
        file_id=files["volcanoes.md"].id, vector_store_id=store.id, attributes={"topic": "geo"}
    )
    deadline = time.monotonic() + 60
    while client.vector_stores.retrieve(store.id).file_counts.completed < len(files):
        assert time.monotonic() < deadline, "the files were not ingested"
        time.sleep(0.1)
    return store, files


def tool(store: Any, **options: Any) -> dict[str, Any]:
    return {"type": "file_search", "vector_store_ids": [store.id], **options}


def check_etna_text(part: Any, files: dict[str, Any]) -> None:
    text = part.text
    assert text == "Etna is in Sicily, where lava flows daily."
    annotations = part.annotations
    assert [a.type for a in annotations] == ["file_citation", "file_citation"]
    assert {a.file_id for a in annotations} == {files["volcanoes.md"].id}
    assert {a.filename for a in annotations} == {"volcanoes.md"}
    assert text[: annotations[0].index].endswith("Sicily")
    assert text[: annotations[1].index].endswith("daily")


def test_search_before_the_answer_and_its_citations(
    client: openai.OpenAI, knowledge: Any, upstream: FakeUpstream, checked: Checked
) -> None:
    store, files = knowledge
    response = client.responses.create(
        model="fake-model",
        input="Etna polled: where is the volcano with lava?",
        tools=[tool(store, max_num_results=2)],
    )
    assert response.status == "completed", response.error
    search, message = response.output
    assert search.type == "file_search_call" and search.status == "completed"
    assert search.queries == ["Etna polled: where is the volcano with lava?"]
    assert search.results is None  # not included
    check_etna_text(message.content[0], files)
    assert response.tools[0].vector_store_ids == [store.id]
    assert response.tools[0].max_num_results == 2
    assert "Response" in checked.names

    # The model saw numbered sources before the question, and the function it may call.
    messages = upstream_messages(upstream, "Etna polled")
    assert messages[-2]["role"] == "system"
    assert "[1] (from volcanoes.md)" in messages[-2]["content"]
    assert "Mount Etna in Sicily" in messages[-2]["content"]
    body = next(r["body"] for r in upstream.chat_requests() if "Etna polled" in str(r["body"]))
    assert [t["function"]["name"] for t in body["tools"]] == ["file_search"]

    # Retrieved with the results included, they are there with their text.
    again = client.responses.retrieve(response.id, include=[RESULTS])
    results = again.output[0].results
    assert results[0].file_id == files["volcanoes.md"].id
    assert results[0].filename == "volcanoes.md" and 0 < results[0].score <= 1
    assert "Etna" in results[0].text and results[0].attributes == {"topic": "geo"}
    assert len(results) <= 2
    assert client.responses.retrieve(response.id).output[0].results is None


def test_the_model_searches_with_its_own_queries(
    client: openai.OpenAI, knowledge: Any, upstream: FakeUpstream
) -> None:
    store, files = knowledge
    response = client.responses.create(
        model="fake-model",
        input="bread own search: what does sourdough bread need?",
        tools=[tool(store, max_num_results=1)],
        include=[RESULTS],
    )
    assert response.status == "completed", response.error
    first, own, message = response.output
    assert first.queries == ["bread own search: what does sourdough bread need?"]
    assert [r.filename for r in first.results] == ["baking.txt"]
    assert own.type == "file_search_call" and own.status == "completed"
    assert own.queries == ["moon tides ocean gravity"]
    assert [r.filename for r in own.results] == ["tides.txt"]
    part = message.content[0]
    assert part.text == "Bread needs a starter; tides follow the moon."
    assert [(a.filename, part.text[: a.index][-7:]) for a in part.annotations] == [
        ("baking.txt", "starter"),
        ("tides.txt", "he moon"),
    ]
    assert part.annotations[1].file_id == files["tides.txt"].id
    # The search went back to the model as its call's result, numbered after the first.
    bodies = [r["body"] for r in upstream.chat_requests() if "bread own" in str(r["body"])]
    assert len(bodies) == 2
    call, result = bodies[1]["messages"][-2:]
    assert call["tool_calls"][0]["function"]["name"] == "file_search"
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
    assert "[2] (from tides.txt)" in result["content"]


def test_stream_helper_and_events(client: openai.OpenAI, knowledge: Any) -> None:
    store, files = knowledge
    with client.responses.stream(
        model="fake-model", input="Etna streamed: lava where?", tools=[tool(store)]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:7] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    assert types.count("response.output_text.annotation.added") == 2
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Etna is in Sicily, where lava flows daily."
    added = [e for e in events if e.type == "response.output_text.annotation.added"]
    assert [e.annotation_index for e in added] == [0, 1]
    check_etna_text(final.output[1].content[0], files)


def test_raw_stream_events_match_the_reference(
    runs_service: ServiceProcess, knowledge: Any
) -> None:
    store, _ = knowledge
    events = raw_events(
        runs_service,
        {
            "model": "fake-model",
            "input": "Etna raw: lava?",
            "tools": [tool(store)],
            "include": [RESULTS],
        },
    )
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert done[0]["item"]["type"] == "file_search_call"
    assert done[0]["item"]["results"][0]["filename"] == "volcanoes.md"
    final = events[-1]
    assert final["type"] == "response.completed"
    assert_matches("Response", final["response"])
    assert final["response"]["output"][0]["results"]


def test_filters_and_ranking_options(client: openai.OpenAI, knowledge: Any) -> None:
    store, _ = knowledge
    response = client.responses.create(
        model="fake-model",
        input="filtered volcano: lava and magma?",
        tools=[
            tool(
                store,
                filters={"type": "ne", "key": "topic", "value": "geo"},
                ranking_options={"ranker": "auto", "score_threshold": 0.01},
            )
        ],
        include=[RESULTS],
    )
    assert response.status == "completed", response.error
    results = response.output[0].results
    assert "volcanoes.md" not in {r.filename for r in results}
    assert all(r.score >= 0.01 for r in results)
    assert response.tools[0].filters.key == "topic"


def test_a_later_turn_searches_again(
    client: openai.OpenAI, knowledge: Any, upstream: FakeUpstream
) -> None:
    store, _ = knowledge
    first = client.responses.create(
        model="fake-model", input="earlier turn: Etna?", tools=[tool(store)]
    )
    second = client.responses.create(
        model="fake-model",
        input="later turn: and then?",
        previous_response_id=first.id,
        tools=[tool(store)],
    )
    assert second.status == "completed", second.error
    assert second.output[0].queries == ["later turn: and then?"]
    messages = upstream_messages(upstream, "later turn")
    # The earlier search is not replayed; this turn's sources come before its question.
    assert [m["role"] for m in messages] == ["user", "assistant", "system", "user"]
    assert messages[0]["content"] == "earlier turn: Etna?"
    assert messages[1]["content"] == "Etna is in Sicily."


def test_bad_file_search_tools(client: openai.OpenAI, knowledge: Any) -> None:
    store, _ = knowledge
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(
            model="fake-model",
            input="x",
            tools=[{"type": "file_search", "vector_store_ids": [store.id, "vs_missing"]}],
        )
    assert missing.value.body["param"] == "tools[0].vector_store_ids[1]"
    for bad, param in [
        ({"type": "file_search"}, "tools[0].vector_store_ids"),
        ({**tool(store), "max_num_results": 0}, "tools[0].max_num_results"),
        ({**tool(store), "ranking_options": {"score_threshold": 3}}, "tools[0].ranking_options"),
        ({**tool(store), "filters": {"type": "near", "key": "a", "value": 1}}, "tools[0].filters"),
        ({**tool(store), "colour": "blue"}, "tools[0].colour"),
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="fake-model", input="x", tools=[bad])
        assert refused.value.body["param"].startswith(param), refused.value.body
    with pytest.raises(openai.BadRequestError) as unchosen:
        client.responses.create(model="fake-model", input="x", tool_choice={"type": "file_search"})
    assert unchosen.value.body["param"] == "tool_choice"


def test_max_tool_calls_counts_the_first_search(
    client: openai.OpenAI, knowledge: Any, upstream: FakeUpstream
) -> None:
    store, _ = knowledge
    response = client.responses.create(
        model="fake-model", input="one search only: Etna", tools=[tool(store)], max_tool_calls=1
    )
    assert [i.type for i in response.output] == ["file_search_call", "message"]
    assert response.output[1].content[0].annotations[0].filename == "volcanoes.md"
    body = next(r["body"] for r in upstream.chat_requests() if "one search" in str(r["body"]))
    assert "tools" not in body


def test_an_expired_store_is_refused(client: openai.OpenAI, database_url: str) -> None:
    expiry = {"anchor": "last_active_at", "days": 1}
    store = client.vector_stores.create(name="old", expires_after=expiry)
    with engine_for(database_url) as engine, engine.begin() as conn:
        conn.execute(update(VectorStore).where(VectorStore.id == store.id).values(expires_at=1_000))
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(
            model="fake-model",
            input="x",
            tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        )
    assert refused.value.body["code"] == "vector_store_expired"
    assert refused.value.body["param"] == "tools[0].vector_store_ids[0]"
