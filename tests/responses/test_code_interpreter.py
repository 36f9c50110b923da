"""code_interpreter in Responses through the official SDK, on SQLite and PostgreSQL: the
model's code run in the bubblewrap sandbox of a container, code_interpreter_call items
(outputs only when included), the streamed events, containers kept across chained
responses and named by id, their files, and the errors; every JSON answer and event checked
against the Responses reference.

The scripted upstream calls ``code_interpreter`` with the ```python block of the user's
message and answers "Output: <what it printed>" once the call's output comes back."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.responses.conftest import raw_events
from tests.support.openapi_responses import Checked, assert_matches
from tests.support.processes import ServiceProcess

SCRIPT: list[dict[str, Any]] = [
    {"match": "limited", "text": "No more code."},
    {
        "match": "mixedcalls",
        "tool_calls": [
            {"name": "code_interpreter", "arguments": {"code": "print(5 * 5)"}},
            {"name": "get_weather", "arguments": {"city": "Oslo"}},
        ],
    },
]
SERVICE_ENV = {"CODE_INTERPRETER_TIMEOUT_SECONDS": "10"}
AUTO = {"type": "code_interpreter", "container": {"type": "auto"}}
OUTPUTS = "code_interpreter_call.outputs"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def python(code: str) -> str:
    return f"Please run this:\n```python\n{code}\n```"


def test_code_is_run_in_a_new_container(
    client: openai.OpenAI, upstream: FakeUpstream, checked: Checked
) -> None:
    response = client.responses.create(
        model="fake-model", input=python("print(6 * 7)"), tools=[AUTO]
    )
    assert response.status == "completed", response.error
    assert response.output[0].outputs is None  # not included
    response = client.responses.retrieve(response.id, include=[OUTPUTS])
    call, _ = response.output
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.code == "print(6 * 7)\n"
    assert call.container_id.startswith("cntr_")
    assert [(o.type, o.logs) for o in call.outputs] == [("logs", "42\n")]
    assert response.output_text == "Output: 42"
    assert response.tools[0].container.type == "auto"
    assert "Response" in checked.names
    # The model saw code_interpreter as a function and read the output back.
    last = upstream.chat_requests()[-1]["body"]
    assert [t["function"]["name"] for t in last["tools"]] == ["code_interpreter"]
    assert last["messages"][-1] == {
        "role": "tool",
        "tool_call_id": last["messages"][-2]["tool_calls"][0]["id"],
        "content": "42",
    }


def test_a_container_keeps_its_state_across_responses(client: openai.OpenAI) -> None:
    first = client.responses.create(
        model="fake-model", input=python("secret = 1234\nprint('kept')"), tools=[AUTO]
    )
    container = first.output[0].container_id
    chained = client.responses.create(
        model="fake-model",
        input=python("print(secret + 1)"),
        tools=[AUTO],
        previous_response_id=first.id,
    )
    assert chained.output_text == "Output: 1235"
    assert chained.output[0].container_id == container
    by_id = client.responses.create(
        model="fake-model",
        input=python("print(secret + 2)"),
        tools=[{"type": "code_interpreter", "container": container}],
    )
    assert by_id.output_text == "Output: 1236"
    assert by_id.tools[0].container == container
    fresh = client.responses.create(
        model="fake-model", input=python("print('secret' in globals())"), tools=[AUTO]
    )
    assert fresh.output_text == "Output: False"
    assert fresh.output[0].container_id != container


def test_container_files_are_in_mnt_data(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    data = client.files.create(file=("prices.csv", b"day,price\n1,10\n2,12\n"), purpose="user_data")
    response = client.responses.create(
        model="fake-model",
        input=python(
            "import csv\n"
            "rows = csv.DictReader(open('/mnt/data/prices.csv'))\n"
            "print(sum(int(r['price']) for r in rows))"
        ),
        tools=[{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [data.id]}}],
    )
    assert response.status == "completed", response.error
    assert response.output_text == "Output: 22"
    body = next(r["body"] for r in upstream.chat_requests() if "prices.csv" in str(r["body"]))
    assert "/mnt/data/prices.csv" in body["tools"][0]["function"]["description"]


def test_streamed_events(client: openai.OpenAI, runs_service: ServiceProcess) -> None:
    with client.responses.stream(
        model="fake-model", input=python("print('streamed')"), tools=[AUTO]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert types[2:4] == [
        "response.output_item.added",
        "response.code_interpreter_call.in_progress",
    ]
    code = "".join(e.delta for e in events if e.type == "response.code_interpreter_call_code.delta")
    assert code == "print('streamed')\n"
    after_code = types[types.index("response.code_interpreter_call_code.done") :]
    assert after_code[:4] == [
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
        "response.output_item.done",
    ]
    assert types[-1] == "response.completed"
    assert final.output_text == "Output: streamed"
    assert final.output[0].status == "completed" and final.output[0].outputs is None

    raw = raw_events(
        runs_service,
        {
            "model": "fake-model",
            "input": python("print('raw')"),
            "tools": [AUTO],
            "include": [OUTPUTS],
        },
    )
    done = next(e for e in raw if e["type"] == "response.output_item.done")
    assert done["item"]["outputs"] == [{"type": "logs", "logs": "raw\n"}]
    assert_matches("Response", raw[-1]["response"])


def test_code_beside_a_function_call(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    asked = client.responses.create(
        model="fake-model", input="mixedcalls please", tools=[AUTO, WEATHER], include=[OUTPUTS]
    )
    assert asked.status == "completed", asked.error
    code, call = asked.output
    assert code.type == "code_interpreter_call" and code.outputs[0].logs == "25\n"
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Oslo"}
    answered = client.responses.create(
        model="fake-model",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[AUTO, WEATHER],
    )
    assert answered.status == "completed", answered.error
    assert answered.output_text == "Output: sunny"
    # The earlier code and its output reached the model as its call and result.
    messages = upstream.chat_requests()[-1]["body"]["messages"]
    code_call = next(m for m in messages if m.get("tool_calls") and "5 * 5" in str(m))
    result = messages[messages.index(code_call) + 1]
    assert result == {"role": "tool", "tool_call_id": code.id, "content": "25"}


def test_bad_containers(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(
            model="fake-model",
            input="x",
            tools=[{"type": "code_interpreter", "container": "cntr_missing"}],
        )
    assert missing.value.body["param"] == "tools[0].container"
    with pytest.raises(openai.NotFoundError) as no_file:
        client.responses.create(
            model="fake-model",
            input="x",
            tools=[
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-x"]}}
            ],
        )
    assert no_file.value.body["param"] == "tools[0].container.file_ids[0]"
    for bad in [
        {"type": "code_interpreter"},
        {"type": "code_interpreter", "container": {"type": "manual"}},
        {"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "2g"}},
        {
            "type": "code_interpreter",
            "container": {"type": "auto", "network_policy": {"type": "allowlist"}},
        },
        {"type": "web_search"},
    ]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model="fake-model", input="x", tools=[bad])
        assert refused.value.body["param"].startswith("tools[0]"), refused.value.body
    with pytest.raises(openai.BadRequestError):
        client.responses.create(
            model="fake-model",
            input="x",
            tools=[AUTO, {"type": "function", "name": "code_interpreter"}],
        )


def test_max_tool_calls_ends_the_code_runs(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(
        model="fake-model", input=python("print('limited')"), tools=[AUTO], max_tool_calls=1
    )
    assert response.status == "completed", response.error
    assert [i.type for i in response.output] == ["code_interpreter_call", "message"]
    assert response.output_text == "No more code." and response.max_tool_calls == 1
    # After its one call the model was asked to answer without the tool.
    last = upstream.chat_requests()[-1]["body"]
    assert "tools" not in last and last["messages"][-1]["content"] == "limited"


def test_a_background_response_runs_code(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="fake-model", input=python("print(2 ** 10)"), tools=[AUTO], background=True
    )
    assert response.status in ("queued", "in_progress")
    deadline = time.monotonic() + 30
    while response.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, "the background response did not finish"
        time.sleep(0.1)
        response = client.responses.retrieve(response.id, include=[OUTPUTS])
    assert response.status == "completed", response.error
    assert response.output[0].outputs[0].logs == "1024\n"
    assert response.output_text == "Output: 1024"
