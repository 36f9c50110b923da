"""Assistants, threads and messages through the official openai SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import openai
import pytest


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
