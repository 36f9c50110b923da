"""Assistants, threads and messages through the official openai SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import openai
import pytest

from services.assistants.tables import Message, Run, RunStep, Thread
from tests.assistants.rows import count, engine_for, insert_run


def test_assistant_lifecycle(openai_client: openai.OpenAI) -> None:
    created = openai_client.beta.assistants.create(
        model="qwen2.5-coder:7b",
        name="Day Trader",
        instructions="Trade carefully.",
        tools=[
            {"type": "function", "function": {"name": "quote", "parameters": {"type": "object"}}}
        ],
        metadata={"desk": "equities"},
        temperature=0.2,
    )
    assert created.id.startswith("asst_")
    assert created.metadata == {"desk": "equities"}
    assert created.tools[0].function.name == "quote"
    fetched = openai_client.beta.assistants.retrieve(created.id)
    assert fetched == created
    modified = openai_client.beta.assistants.update(created.id, name="Wayne", metadata={})
    assert (modified.name, modified.metadata, modified.instructions) == (
        "Wayne",
        {},
        "Trade carefully.",
    )
    deleted = openai_client.beta.assistants.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        openai_client.beta.assistants.retrieve(created.id)


def test_thread_with_initial_messages(openai_client: openai.OpenAI) -> None:
    thread = openai_client.beta.threads.create(
        messages=[
            {"role": "user", "content": "What is 2 + 2?"},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
        ],
        metadata={"user": "aurora"},
    )
    assert thread.id.startswith("thread_")
    messages = openai_client.beta.threads.messages.list(thread.id, order="asc")
    assert [m.role for m in messages.data] == ["user", "assistant"]
    assert messages.data[0].content[0].text.value == "What is 2 + 2?"
    assert messages.data[1].content[0].text.annotations == []
    updated = openai_client.beta.threads.update(thread.id, metadata={"user": "ta"})
    assert updated.metadata == {"user": "ta"}
    openai_client.beta.threads.delete(thread.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.beta.threads.messages.list(thread.id)


def test_message_pagination_walks_every_page(openai_client: openai.OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    ids = [
        openai_client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id
        for i in range(25)
    ]
    seen = [m.id for m in openai_client.beta.threads.messages.list(thread.id, limit=4, order="asc")]
    assert seen == ids
    newest_first = [m.id for m in openai_client.beta.threads.messages.list(thread.id, limit=7)]
    assert newest_first == ids[::-1]
    page = openai_client.beta.threads.messages.list(thread.id, limit=3, order="asc", before=ids[10])
    assert [m.id for m in page.data] == ids[7:10] and page.has_more


def test_errors_have_openai_classes(openai_client: openai.OpenAI, assistants_service) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.beta.threads.retrieve("thread_missing")
    assert missing.value.body["code"] == "not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        openai_client.beta.assistants.create(model="m", metadata={str(i): "v" for i in range(17)})
    assert bad.value.body["param"] == "metadata"
    wrong = openai.OpenAI(
        base_url=f"{assistants_service.base_url}/v1", api_key="wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        wrong.beta.assistants.list()


def test_assistants_auto_paginate(openai_client: openai.OpenAI) -> None:
    created = [openai_client.beta.assistants.create(model="m", name=f"a{i}").id for i in range(7)]
    everything = [a.id for a in openai_client.beta.assistants.list(limit=100, order="asc")]
    walked = [a.id for a in openai_client.beta.assistants.list(limit=2, order="asc")]
    assert walked == everything and len(set(walked)) == len(walked)
    assert walked[-7:] == created
    newest_first = [a.id for a in openai_client.beta.assistants.list(limit=3)]
    assert newest_first == everything[::-1]
    first = openai_client.beta.assistants.list(limit=2, order="asc")
    assert first.has_more and [a.id for a in first.data] == everything[:2]
    assert first.first_id == everything[0] and first.last_id == everything[1]


def test_cursor_semantics(openai_client: openai.OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    messages = openai_client.beta.threads.messages
    ids = [messages.create(thread.id, role="user", content=f"m{i}").id for i in range(10)]

    def page(**params: object) -> tuple[list[str], bool]:
        result = messages.list(thread.id, **params)  # type: ignore[arg-type]
        return [m.id for m in result.data], result.has_more

    assert page(limit=3, order="asc", after=ids[2]) == (ids[3:6], True)
    assert page(limit=3, order="desc", after=ids[7]) == (ids[6:3:-1], True)
    assert page(limit=3, order="desc", after=ids[2]) == ([ids[1], ids[0]], False)
    # `before` gives the objects just before the cursor, still in the requested order.
    assert page(limit=3, order="asc", before=ids[2]) == (ids[0:2], False)
    assert page(limit=3, order="desc", before=ids[2]) == (ids[5:2:-1], True)
    assert page(limit=100, order="asc", after=ids[1], before=ids[5]) == (ids[2:5], False)
    assert page(limit=100, order="desc", after=ids[5], before=ids[1]) == (ids[4:1:-1], False)
    assert page(limit=5, order="asc", after=ids[9]) == ([], False)
    with pytest.raises(openai.BadRequestError) as unknown:
        messages.list(thread.id, after="msg_unknown")
    assert unknown.value.body["param"] == "after"
    other = openai_client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as foreign:
        messages.list(other.id, before=ids[0])
    assert foreign.value.body["param"] == "before"
    for bad in ({"limit": 0}, {"limit": 101}, {"order": "sideways"}):
        with pytest.raises(openai.BadRequestError) as invalid:
            messages.list(thread.id, **bad)  # type: ignore[arg-type]
        assert invalid.value.body["param"] == next(iter(bad))


def test_message_modify_delete_and_content_parts(openai_client: openai.OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    document = openai_client.files.create(file=("doc.txt", b"notes"), purpose="assistants")
    messages = openai_client.beta.threads.messages
    message = messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Compare these charts."},
            {
                "type": "image_url",
                "image_url": {"url": "https://charts.test/a.png", "detail": "high"},
            },
            {"type": "image_file", "image_file": {"file_id": "file-abc123"}},
        ],
        attachments=[{"file_id": document.id, "tools": [{"type": "file_search"}]}],
        metadata={"source": "desk"},
    )
    assert [part.type for part in message.content] == ["text", "image_url", "image_file"]
    assert message.content[0].text.value == "Compare these charts."
    assert message.content[1].image_url.url == "https://charts.test/a.png"
    assert message.content[1].image_url.detail == "high"
    assert message.content[2].image_file.file_id == "file-abc123"
    assert message.attachments[0].file_id == document.id
    assert (message.role, message.status, message.thread_id) == ("user", "completed", thread.id)

    modified = messages.update(message.id, thread_id=thread.id, metadata={"source": "risk"})
    assert modified.metadata == {"source": "risk"} and modified.content == message.content
    assert messages.retrieve(message.id, thread_id=thread.id).metadata == {"source": "risk"}
    other = openai_client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        messages.retrieve(message.id, thread_id=other.id)
    deleted = messages.delete(message.id, thread_id=thread.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (
        message.id,
        True,
        "thread.message.deleted",
    )
    with pytest.raises(openai.NotFoundError):
        messages.delete(message.id, thread_id=thread.id)
    assert messages.list(thread.id).data == []


def test_run_id_filter_and_thread_delete_cascade(
    openai_client: openai.OpenAI, database_url: str
) -> None:
    assistant = openai_client.beta.assistants.create(model="m")
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with engine_for(database_url) as engine:
        first = insert_run(engine, thread.id, assistant.id, status="completed")
        second = insert_run(engine, thread.id, assistant.id, status="completed")
        listed = openai_client.beta.threads.messages.list(thread.id, run_id=first)
        assert [(m.run_id, m.role) for m in listed.data] == [(first, "assistant")]
        assert len(openai_client.beta.threads.messages.list(thread.id).data) == 3
        assert openai_client.beta.threads.messages.list(thread.id, run_id="run_other").data == []
        # A thread with an active run refuses new messages, as OpenAI does.
        active = insert_run(engine, thread.id, assistant.id, status="in_progress")
        with pytest.raises(openai.BadRequestError, match=active):
            openai_client.beta.threads.messages.create(thread.id, role="user", content="more")

        assert openai_client.beta.threads.delete(thread.id).deleted
        for table in (Message, Run, RunStep):
            assert count(engine, table, thread_id=thread.id) == 0, table.__tablename__
        for run_id in (first, second, active):
            assert count(engine, RunStep, run_id=run_id) == 0
        assert count(engine, Thread, id=thread.id) == 0
