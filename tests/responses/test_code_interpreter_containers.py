"""Containers of code_interpreter in Responses expire with their sandbox session: after
CODE_INTERPRETER_IDLE_SECONDS unused, a container id is refused and ``auto`` makes a new
container instead of reusing it; SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

SCRIPT: list[dict[str, Any]] = []
SERVICE_ENV = {"CODE_INTERPRETER_IDLE_SECONDS": "1.5"}
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}


def python(code: str) -> str:
    return f"Please run this:\n```python\n{code}\n```"


def test_an_idle_container_expires(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="fake-model", input=python("kept = 7\nprint(kept)"), tools=[AUTO]
    )
    assert first.output_text == "Output: 7", first.error
    container = first.output[0].container_id
    quick = client.responses.create(
        model="fake-model",
        input=python("print(kept * 2)"),
        tools=[AUTO],
        previous_response_id=first.id,
    )
    assert quick.output_text == "Output: 14" and quick.output[0].container_id == container
    time.sleep(2.5)
    with pytest.raises(openai.BadRequestError) as expired:
        client.responses.create(
            model="fake-model",
            input=python("print(1)"),
            tools=[{"type": "code_interpreter", "container": container}],
        )
    assert expired.value.body["code"] == "container_expired"
    assert expired.value.body["param"] == "tools[0].container"
    later = client.responses.create(
        model="fake-model",
        input=python("print('kept' in globals())"),
        tools=[AUTO],
        previous_response_id=quick.id,
    )
    assert later.output_text == "Output: False"
    assert later.output[0].container_id != container
