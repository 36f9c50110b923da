"""Conversations and their items through the SDK, responses appended to them, and the
Assistants API beside them in the same database; SQLite and PostgreSQL."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.responses.conftest import upstream_messages
from tests.support.openapi_responses import Checked

SCRIPT = [
    {"match": "conv opening", "text": "Welcome to the conversation."},
    {"match": "conv follow", "text": "Following up."},
    {"match": "thread question", "text": "Answered in a thread."},
    {"match": "side by side", "text": "Answered in a conversation."},
]


def test_conversation_lifecycle(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(
        metadata={"project": "alpha"},
        items=[
            {"type": "message", "role": "system", "content": "Speak French."},
            {"role": "user", "content": "bonjour"},
        ],
    )
    assert conversation.id.startswith("conv_") and conversation.object == "conversation"
    assert client.conversations.retrieve(conversation.id).metadata == {"project": "alpha"}
    updated = client.conversations.update(conversation.id, metadata={"project": "beta"})
    assert updated.metadata == {"project": "beta"}

    items = client.conversations.items.list(conversation.id, order="asc")
    assert [(i.type, i.role) for i in items.data] == [("message", "system"), ("message", "user")]
    added = client.conversations.items.create(
        conversation.id, items=[{"role": "user", "content": "and another"}]
    )
    assert len(added.data) == 1 and added.data[0].content[0].text == "and another"
    item = client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert item.id == added.data[0].id
    after = client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
    assert after.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert len(client.conversations.items.list(conversation.id).data) == 2

    paged = list(client.conversations.items.list(conversation.id, limit=1))
    assert len(paged) == 2

    deleted = client.conversations.delete(conversation.id)
    assert deleted.deleted and deleted.id == conversation.id
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conversation.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conversation.id)


def test_responses_append_to_a_conversation(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    conversation = client.conversations.create(
        items=[{"role": "developer", "content": "Be concise."}]
    )
    first = client.responses.create(
        model="fake-model", input="conv opening words", conversation=conversation.id
    )
    assert first.conversation.id == conversation.id
    second = client.responses.create(
        model="fake-model", input="conv follow up", conversation={"id": conversation.id}
    )
    assert second.output_text == "Following up."
    # The model saw the conversation so far, then the new input.
    assert upstream_messages(upstream, "conv follow") == [
        {"role": "system", "content": "Be concise."},
        {"role": "user", "content": "conv opening words"},
        {"role": "assistant", "content": "Welcome to the conversation."},
        {"role": "user", "content": "conv follow up"},
    ]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [(i.type, i.role) for i in items] == [
        ("message", "developer"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert items[-1].id == second.output[0].id
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model="fake-model",
            input="x",
            conversation=conversation.id,
            previous_response_id=first.id,
        )
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="fake-model", input="x", conversation="conv_missing")
    # Deleting a response leaves its conversation whole.
    client.responses.delete(first.id)
    assert len(client.conversations.items.list(conversation.id).data) == 5


def test_assistants_and_responses_side_by_side(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="fake-model", name="Old code")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "thread question"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    conversation = client.conversations.create()
    response = client.responses.create(
        model="fake-model", input="side by side", conversation=conversation.id
    )
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert messages[-1].content[0].text.value == "Answered in a thread."
    assert response.output_text == "Answered in a conversation."
    # Each API sees its own objects, from the one database.
    assert client.beta.assistants.retrieve(assistant.id).name == "Old code"
    assert len(client.conversations.items.list(conversation.id).data) == 2
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(conversation.id)


def test_conversation_answers_were_checked(checked: Checked) -> None:
    assert {"ConversationResource", "ConversationItemList", "DeletedConversationResource"} <= set(
        checked.names
    )
