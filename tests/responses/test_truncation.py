"""truncation on a small context window: ``disabled`` refuses an oversized input with a
400, ``auto`` drops the oldest turns of a chain and keeps the newest input."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.responses.conftest import upstream_messages
from tests.runs.conftest import BASE_ENV

SERVICE_ENV = {**BASE_ENV, "RESPONSES_CONTEXT_TOKENS": "300"}
SCRIPT = [
    {"match": "long turn", "text": "z" * 800},
    {"match": "last turn", "text": "kept"},
]


def test_disabled_refuses_and_auto_drops_the_oldest(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="fake-model", input="w " * 800)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert caught.value.body["param"] == "input"

    first = client.responses.create(model="fake-model", input="long turn " + "y" * 800)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model="fake-model", input="last turn", previous_response_id=first.id
        )
    last = client.responses.create(
        model="fake-model", input="last turn", previous_response_id=first.id, truncation="auto"
    )
    assert last.output_text == "kept"
    # The oldest item (the long question) went; what fits stays.
    assert upstream_messages(upstream, "last turn") == [
        {"role": "assistant", "content": "z" * 800},
        {"role": "user", "content": "last turn"},
    ]
    count = client.responses.input_tokens.count(
        model="fake-model", input="last turn", previous_response_id=first.id, truncation="auto"
    )
    assert 0 < count.input_tokens < 300
