"""Runs with file_search through a scripted upstream: the retrieval before the model
answers, the file_search step (polled, streamed, with include[] content), citations as
OpenAI's markers with exact annotation offsets, message attachments and the
vector_stores helper; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AssistantEventHandler
from sqlalchemy import update
from typing_extensions import override

from services.assistants.tables import VectorStore
from tests.assistants.rows import engine_for
from tests.fakes.process import FakeUpstream
from tests.retrieval.conftest import DOCUMENTS, upload
from tests.runs.sse import assert_event_shapes, stream_events
from tests.support.openapi import assert_matches
from tests.support.processes import ServiceProcess

ETNA_ANSWER = "Etna is in Sicily [1], where lava flows daily [1]."
SCRIPT = [
    {"match": "Etna polled", "text": ETNA_ANSWER, "chunks": 9},
    {"match": "Etna streamed", "text": ETNA_ANSWER, "chunks": 11},
    {"match": "Etna raw", "text": ETNA_ANSWER, "chunks": 4},
    {"match": "sourdough attached", "text": "Use a starter [1] and no source [7].", "chunks": 5},
    {"match": "tides helper", "text": "The moon [1].", "chunks": 2},
    {
        "match": "own queries",
        "tool_calls": [{"name": "file_search", "arguments": {"queries": ["ocean tides moon"]}}],
    },
    {"match": "own queries", "text": "Lava [1] and the moon [2].", "chunks": 4},
    {
        "match": "streamed own",
        "tool_calls": [{"name": "file_search", "arguments": {"queries": ["sourdough starter"]}}],
    },
    {"match": "streamed own", "text": "Bread [2].", "chunks": 2},
]
INCLUDE = "step_details.tool_calls[*].file_search.results[*].content"


@pytest.fixture(scope="module")
def knowledge(client: openai.OpenAI):
    files = {name: upload(client, name, text) for name, text in DOCUMENTS.items()}
    store = client.vector_stores.create(name="kb", file_ids=[f.id for f in files.values()])
    assistant = client.beta.assistants.create(
        model="fake-model",
        instructions="Answer from the files.",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 2}}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    return assistant, store, files


def check_citations(text: Any, files: dict[str, Any]) -> None:
    marker = "【1†volcanoes.md】"
    assert text.value == f"Etna is in Sicily {marker}, where lava flows daily {marker}."
    assert len(text.annotations) == 2
    for annotation in text.annotations:
        assert annotation.type == "file_citation"
        assert annotation.file_citation.file_id == files["volcanoes.md"].id
        assert text.value[annotation.start_index : annotation.end_index] == marker
        assert annotation.text == marker


def test_polled_run_cites_its_sources(
    client: openai.OpenAI, knowledge, upstream: FakeUpstream
) -> None:
    assistant, _, files = knowledge
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Etna polled: where is the volcano with lava?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert run.status == "completed", run.last_error
    reply = client.beta.threads.messages.list(thread.id).data[0]
    check_citations(reply.content[0].text, files)

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    assert call.file_search.ranking_options.ranker == "default_2024_08_21"
    results = call.file_search.results
    assert results[0].file_id == files["volcanoes.md"].id
    assert results[0].file_name == "volcanoes.md" and 0 <= results[0].score <= 1
    assert len(results) <= 2 and results[0].content is None
    with_text = client.beta.threads.runs.steps.retrieve(
        steps[0].id, thread_id=thread.id, run_id=run.id, include=[INCLUDE]
    )
    assert "Etna" in with_text.step_details.tool_calls[0].file_search.results[0].content[0].text

    # The model saw the numbered sources before the user's question.
    chat = [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    sent = next(r for r in chat if "Etna polled" in str(r["body"]["messages"]))["body"]
    sources = sent["messages"][-2]
    assert sources["role"] == "system"
    assert "[1] (from volcanoes.md)" in sources["content"]
    assert "Mount Etna in Sicily" in sources["content"]
    assert sent["messages"][-1]["role"] == "user"


class Recorder(AssistantEventHandler):
    def __init__(self) -> None:
        super().__init__()
        self.tool_calls: list[Any] = []
        self.text = ""

    @override
    def on_tool_call_created(self, tool_call: Any) -> None:
        self.tool_calls.append(tool_call)

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""


def test_streamed_run_through_the_sdk_handler(client: openai.OpenAI, knowledge) -> None:
    assistant, _, files = knowledge
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Etna streamed: where is the lava?"}]
    )
    recorder = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=recorder
    ) as stream:
        stream.until_done()
    assert [c.type for c in recorder.tool_calls] == ["file_search"]
    final = recorder.get_final_messages()[0]
    check_citations(final.content[0].text, files)
    assert recorder.text == final.content[0].text.value


def test_raw_stream_events_match_the_reference(service: ServiceProcess, knowledge) -> None:
    assistant, _, files = knowledge
    events = stream_events(
        service.base_url,
        "/threads/runs",
        {
            "assistant_id": assistant.id,
            "thread": {"messages": [{"role": "user", "content": "Etna raw: lava where?"}]},
        },
    )
    assert_event_shapes(events)
    names = [name for name, _ in events]
    assert names.index("thread.run.step.completed") < names.index("thread.message.created")
    deltas = [d for n, d in events if n == "thread.message.delta"]
    annotations = [a for d in deltas for a in d["delta"]["content"][0]["text"]["annotations"]]
    assert [a["index"] for a in annotations] == [0, 1]
    completed = next(d for n, d in events if n == "thread.message.completed")
    assert_matches("MessageObject", completed)
    assert completed["content"][0]["text"]["annotations"][0]["file_citation"]["file_id"] == (
        files["volcanoes.md"].id
    )


def test_attachments_give_the_thread_its_own_store(client: openai.OpenAI) -> None:
    f = upload(client, "bread.txt", DOCUMENTS["baking.txt"])
    assistant = client.beta.assistants.create(
        model="fake-model", instructions="Be brief.", tools=[{"type": "file_search"}]
    )
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(
        thread.id,
        role="user",
        content="sourdough attached: what do I need?",
        attachments=[{"file_id": f.id, "tools": [{"type": "file_search"}]}],
    )
    store_ids = client.beta.threads.retrieve(thread.id).tool_resources.file_search.vector_store_ids
    assert len(store_ids) == 1
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert run.status == "completed", run.last_error
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text
    # [7] names no source: it stays as the model wrote it.
    assert text.value == "Use a starter 【1†bread.txt】 and no source [7]."
    assert [a.file_citation.file_id for a in text.annotations] == [f.id]


def test_vector_stores_helper_on_a_thread(client: openai.OpenAI) -> None:
    f = upload(client, "tides.txt", DOCUMENTS["tides.txt"])
    assistant = client.beta.assistants.create(
        model="fake-model", instructions="Be brief.", tools=[{"type": "file_search"}]
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={
            "messages": [{"role": "user", "content": "tides helper: what pulls the sea?"}],
            "tool_resources": {"file_search": {"vector_stores": [{"file_ids": [f.id]}]}},
        },
        poll_interval_ms=100,
    )
    assert run.status == "completed", run.last_error
    thread = client.beta.threads.retrieve(run.thread_id)
    [store_id] = thread.tool_resources.file_search.vector_store_ids
    assert client.vector_stores.files.retrieve(f.id, vector_store_id=store_id).status == (
        "completed"
    )
    text = client.beta.threads.messages.list(run.thread_id).data[0].content[0].text
    assert text.value == "The moon 【1†tides.txt】."


def test_unknown_store_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.beta.assistants.create(
            model="m", tool_resources={"file_search": {"vector_store_ids": ["vs_missing"]}}
        )
    assert refused.value.body["param"] == "tool_resources.file_search.vector_store_ids[0]"


def test_the_model_searches_with_its_own_queries(
    client: openai.OpenAI, knowledge, upstream: FakeUpstream
) -> None:
    _, store, files = knowledge
    assistant = client.beta.assistants.create(
        model="fake-model",
        instructions="Search when you need more.",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 1}}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "own queries: Etna lava, and the sea?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert run.status == "completed", run.last_error
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text
    assert text.value == "Lava 【1†volcanoes.md】 and the moon 【2†tides.txt】."
    assert [a.file_citation.file_id for a in text.annotations] == [
        files["volcanoes.md"].id,
        files["tides.txt"].id,
    ]
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    for step in steps:
        assert_matches("RunStepObject", step.model_dump(mode="json", exclude_unset=True))
    own = client.beta.threads.runs.steps.retrieve(
        steps[1].id, thread_id=thread.id, run_id=run.id, include=[INCLUDE]
    )
    [call] = own.step_details.tool_calls
    assert call.type == "file_search"
    assert call.file_search.model_extra["queries"] == ["ocean tides moon"]
    [result] = call.file_search.results
    assert result.file_name == "tides.txt" and "moon" in result.content[0].text
    # The model was offered the search and read its results, numbered after the first.
    bodies = [r["body"] for r in upstream.chat_requests() if "own queries" in str(r["body"])]
    assert [t["function"]["name"] for t in bodies[0]["tools"]] == ["file_search"]
    tool_result = bodies[1]["messages"][-1]
    assert tool_result["role"] == "tool" and "[2] (from tides.txt)" in tool_result["content"]


def test_streamed_own_search_events(service: ServiceProcess, knowledge) -> None:
    assistant, _, _ = knowledge
    events = stream_events(
        service.base_url,
        "/threads/runs",
        {
            "assistant_id": assistant.id,
            "thread": {"messages": [{"role": "user", "content": "streamed own: volcano bread"}]},
        },
    )
    assert_event_shapes(events)
    deltas = [
        call
        for name, data in events
        if name == "thread.run.step.delta"
        for call in data["delta"]["step_details"]["tool_calls"]
    ]
    assert all(d["type"] == "file_search" for d in deltas)
    completed = [d for n, d in events if n == "thread.run.step.completed"]
    own = completed[1]["step_details"]["tool_calls"][0]
    assert own["type"] == "file_search" and own["file_search"]["queries"] == ["sourdough starter"]
    message = next(d for n, d in events if n == "thread.message.completed")
    value = message["content"][0]["text"]["value"]
    assert value == "Bread 【2†baking.txt】."
    assert [name for name, _ in events[-2:]] == ["thread.run.completed", "done"]


def test_run_on_an_expired_store_fails_and_says_why(
    client: openai.OpenAI, database_url: str, upstream: FakeUpstream
) -> None:
    tides = upload(client, "tides.txt", DOCUMENTS["tides.txt"])
    attachment = {"file_id": tides.id, "tools": [{"type": "file_search"}]}
    question = "tides expired: what pulls them?"
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": question, "attachments": [attachment]}]
    )
    [store_id] = thread.tool_resources.file_search.vector_store_ids
    assert client.vector_stores.retrieve(store_id).expires_after.days == 7
    with engine_for(database_url) as engine, engine.begin() as conn:
        conn.execute(update(VectorStore).where(VectorStore.id == store_id).values(expires_at=1_000))
    assistant = client.beta.assistants.create(
        model="fake-model", instructions="Answer from the files.", tools=[{"type": "file_search"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=100
    )
    assert run.status == "failed"
    assert run.last_error.code == "invalid_prompt"
    assert store_id in run.last_error.message and "expired" in run.last_error.message
    assert run.failed_at is not None
    # The model was never asked, and nothing was searched in silence.
    chat = [r for r in upstream.requests() if r["path"].endswith("/chat/completions")]
    assert not any("tides expired" in str(r["body"]["messages"]) for r in chat)
    assert client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data == []

    # New attachments cannot go into the expired store either.
    with pytest.raises(openai.BadRequestError) as attached:
        client.beta.threads.messages.create(
            thread.id, role="user", content="more", attachments=[attachment]
        )
    assert attached.value.body["code"] == "vector_store_expired"
    assert attached.value.body["param"] == "attachments"
