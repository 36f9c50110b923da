"""code_interpreter through the official SDK: the service runs the model's code in its sandbox.

The scripted upstream calls ``code_interpreter`` with the ```python block of the user's
message and answers with the output it is given back; everything between is the service's.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from tests.fakes.process import FakeUpstream
from tests.runs.conftest import WEATHER_TOOL
from tests.runs.sse import assert_event_shapes, stream_events
from tests.support.openapi import assert_matches
from tests.support.processes import ServiceProcess

SCRIPT: list[dict[str, Any]] = [
    {
        "match": "mixedcalls",
        "tool_calls": [
            {"name": "code_interpreter", "arguments": {"code": "print(5 * 5)"}},
            {"name": "get_weather", "arguments": {"city": "Oslo"}},
        ],
    }
]
SERVICE_ENV = {"CODE_INTERPRETER_TIMEOUT_SECONDS": "4"}
CI_TOOL = {"type": "code_interpreter"}


def python(code: str) -> str:
    return f"Please run this:\n```python\n{code}\n```"


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(
        model="fake-model", instructions="Compute with Python.", tools=[CI_TOOL]
    )


def code_calls(client: openai.OpenAI, thread_id: str, run_id: str) -> list[Any]:
    steps = client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc")
    calls = []
    for step in steps.data:
        assert_matches("RunStepObject", step.model_dump(mode="json", exclude_unset=True))
        if step.type == "tool_calls":
            assert step.status == "completed"
            calls += [c for c in step.step_details.tool_calls if c.type == "code_interpreter"]
    return calls


def answer(client: openai.OpenAI, thread_id: str) -> str:
    messages = client.beta.threads.messages.list(thread_id, order="desc", limit=1)
    return messages.data[0].content[0].text.value


def test_a_computation_is_run_and_answered(
    client: openai.OpenAI, assistant: Any, upstream: FakeUpstream
) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": python("print(sum(range(101)))")}]},
    )
    assert run.status == "completed", run.last_error
    calls = code_calls(client, run.thread_id, run.id)
    assert len(calls) == 1
    assert calls[0].code_interpreter.input == "print(sum(range(101)))\n"
    assert calls[0].code_interpreter.outputs[0].type == "logs"
    assert calls[0].code_interpreter.outputs[0].logs.strip() == "5050"
    assert answer(client, run.thread_id) == "Output: 5050"
    # The model saw the tool as a function and got the output back as the tool result.
    last = upstream.requests()[-1]["body"]
    names = [t["function"]["name"] for t in last["tools"]]
    assert names == ["code_interpreter"]
    assert last["messages"][-1] == {
        "role": "tool",
        "tool_call_id": calls[0].id,
        "content": "5050",
    }
    assert run.usage is not None and run.usage.completion_tokens > 0


def test_a_session_keeps_variables_across_runs(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content=python("kept = 6 * 7"))
    first = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert first.status == "completed", first.last_error
    client.beta.threads.messages.create(thread.id, role="user", content=python("print(kept)"))
    second = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert second.status == "completed", second.last_error
    assert answer(client, thread.id) == "Output: 42"
    # Another thread is another session: the variable is not there.
    other = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": python("print(kept)")}]},
    )
    assert "NameError" in answer(client, other.thread_id)


def test_errors_reach_the_model_and_the_run_goes_on(client: openai.OpenAI, assistant: Any) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": python("1 / 0")}]},
    )
    assert run.status == "completed"
    logs = code_calls(client, run.thread_id, run.id)[0].code_interpreter.outputs[0].logs
    assert "ZeroDivisionError: division by zero" in logs
    assert "ZeroDivisionError" in answer(client, run.thread_id)


def test_streamed_with_the_event_handler(client: openai.OpenAI, assistant: Any) -> None:
    code = 'for i in range(3):\n    print("line", i)'

    class Handler(AssistantEventHandler):
        def __init__(self) -> None:
            super().__init__()
            self.inputs: list[str] = []
            self.logs: list[str] = []
            self.created: list[str] = []
            self.done: list[Any] = []

        @override
        def on_tool_call_created(self, tool_call: Any) -> None:
            self.created.append(tool_call.type)

        @override
        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            assert delta.type == "code_interpreter"
            if delta.code_interpreter.input:
                self.inputs.append(delta.code_interpreter.input)
            for output in delta.code_interpreter.outputs or ():
                if output.type == "logs":
                    self.logs.append(output.logs)

        @override
        def on_tool_call_done(self, tool_call: Any) -> None:
            self.done.append(tool_call)

    thread = client.beta.threads.create(messages=[{"role": "user", "content": python(code)}])
    handler = Handler()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.created == ["code_interpreter"]
    assert "".join(handler.inputs) == code + "\n"
    assert len(handler.inputs) > 1  # the code streamed in pieces, as the model wrote it
    assert "".join(handler.logs) == "line 0\nline 1\nline 2\n"
    snapshot = handler.done[0]
    assert snapshot.code_interpreter.input == code + "\n"
    assert handler.get_final_run().status == "completed"
    assert handler.get_final_messages()[-1].content[0].text.value.startswith("Output: line 0")


def test_stream_events_fit_the_reference(
    runs_service: ServiceProcess, client: openai.OpenAI, assistant: Any
) -> None:
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": python("print('shapes')")}]
    )
    events = stream_events(
        runs_service.base_url, f"threads/{thread.id}/runs", {"assistant_id": assistant.id}
    )
    assert_event_shapes(events)
    names = [n for n, _ in events]
    assert "thread.run.requires_action" not in names
    assert names[-2:] == ["thread.run.completed", "done"]
    completed = [d for n, d in events if n == "thread.run.step.completed"]
    assert [s["type"] for s in completed] == ["tool_calls", "message_creation"]


def test_per_run_tool_on_an_assistant_without_it(client: openai.OpenAI) -> None:
    plain = client.beta.assistants.create(model="fake-model")
    run = client.beta.threads.create_and_run_poll(
        assistant_id=plain.id,
        tools=[CI_TOOL],
        thread={"messages": [{"role": "user", "content": python("print(2 ** 10)")}]},
    )
    assert run.status == "completed", run.last_error
    assert answer(client, run.thread_id) == "Output: 1024"


def test_a_csv_given_by_file_ids_is_read_and_a_file_written_back(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    csv = b"symbol,qty,price\nAAA,10,2.5\nBBB,4,10\n"
    given = client.files.create(file=("prices.csv", csv), purpose="assistants")
    desk = client.beta.assistants.create(
        model="fake-model",
        instructions="Compute with Python.",
        tools=[CI_TOOL],
        tool_resources={"code_interpreter": {"file_ids": [given.id]}},
    )
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('/mnt/data/prices.csv')\n"
        "df['total'] = df.qty * df.price\n"
        "df.to_csv('/mnt/data/totals.csv', index=False)\n"
        "print(df.total.sum())"
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=desk.id, thread={"messages": [{"role": "user", "content": python(code)}]}
    )
    assert run.status == "completed", run.last_error
    message = client.beta.threads.messages.list(run.thread_id, order="desc", limit=1).data[0]
    assert_matches("MessageObject", message.model_dump(mode="json", exclude_unset=True))
    text = message.content[0].text
    assert text.value.startswith("Output: 65.0")
    (annotation,) = text.annotations
    assert annotation.type == "file_path"
    assert annotation.text == "sandbox:/mnt/data/totals.csv"
    assert text.value[annotation.start_index : annotation.end_index] == annotation.text
    written = client.files.retrieve(annotation.file_path.file_id)
    assert written.purpose == "assistants_output"
    assert written.filename == "totals.csv"
    content = client.files.content(written.id).read()
    assert content == b"symbol,qty,price,total\nAAA,10,2.5,25.0\nBBB,4,10.0,40.0\n"
    # The model was told where the given file is.
    first = next(
        r["body"]
        for r in upstream.requests()
        if r["path"].endswith("/chat/completions")
        and "prices.csv" in json.dumps(r["body"]["messages"])
    )
    assert "Files available: /mnt/data/prices.csv." in first["tools"][0]["function"]["description"]


def test_thread_resources_and_attachments_appear_by_name(
    client: openai.OpenAI, assistant: Any
) -> None:
    notes = client.files.create(file=("notes.txt", b"buy low"), purpose="assistants")
    extra = client.files.create(file=("extra.txt", b"sell high"), purpose="assistants")
    thread = client.beta.threads.create(
        tool_resources={"code_interpreter": {"file_ids": [notes.id]}},
        messages=[
            {
                "role": "user",
                "content": python(
                    "import os\nprint(sorted(os.listdir('/mnt/data')))\n"
                    "print(open('/mnt/data/notes.txt').read(), open('/mnt/data/extra.txt').read())"
                ),
                "attachments": [{"file_id": extra.id, "tools": [CI_TOOL]}],
            }
        ],
    )
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed", run.last_error
    assert answer(client, thread.id) == "Output: ['extra.txt', 'notes.txt']\nbuy low sell high"


def test_a_figure_becomes_an_image_file(client: openai.OpenAI, assistant: Any) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')"
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": python(code)}]},
    )
    assert run.status == "completed", run.last_error
    (call,) = code_calls(client, run.thread_id, run.id)
    images = [o for o in call.code_interpreter.outputs if o.type == "image"]
    assert len(images) == 1
    png = client.files.content(images[0].image.file_id).read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.files.retrieve(images[0].image.file_id).purpose == "assistants_output"
    message = client.beta.threads.messages.list(run.thread_id, order="desc", limit=1).data[0]
    assert_matches("MessageObject", message.model_dump(mode="json", exclude_unset=True))
    kinds = [part.type for part in message.content]
    assert kinds == ["text", "image_file"]
    assert message.content[1].image_file.file_id == images[0].image.file_id
    assert "1 image(s) displayed to the user" in message.content[0].text.value


def test_a_hang_ends_with_an_error_the_model_sees(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create()
    client.beta.threads.messages.create(thread.id, role="user", content=python("kept = 'ok'"))
    client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    client.beta.threads.messages.create(thread.id, role="user", content=python("while True: pass"))
    started = time.monotonic()
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert time.monotonic() - started < 4 + 10
    assert run.status == "completed", run.last_error
    logs = code_calls(client, thread.id, run.id)[0].code_interpreter.outputs[0].logs
    assert "stopped after 4 s (time limit)" in logs
    assert "time limit" in answer(client, thread.id)
    # The session was restarted: the old variable is gone, the session works.
    client.beta.threads.messages.create(thread.id, role="user", content=python("print(2 + 2)"))
    after = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert after.status == "completed"
    assert answer(client, thread.id) == "Output: 4"


def test_cancelling_a_run_stops_its_code(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": python("import time\ntime.sleep(3)\nopen('late', 'w').close()"),
            }
        ]
    )
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
        if any(s.type == "tool_calls" for s in steps.data):
            break
        time.sleep(0.05)
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id)
    assert run.status == "cancelled"
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data
    assert [s.status for s in steps if s.type == "tool_calls"] == ["cancelled"]
    assert [m.role for m in client.beta.threads.messages.list(thread.id).data] == ["user"]
    # The code was stopped: it never got to write its file.
    time.sleep(3.5)
    client.beta.threads.messages.create(
        thread.id, role="user", content=python("import os\nprint(os.path.exists('late'))")
    )
    after = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert after.status == "completed"
    assert answer(client, thread.id) == "Output: False"


def test_function_calls_beside_code_wait_for_the_caller(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    both = client.beta.assistants.create(model="fake-model", tools=[CI_TOOL, WEATHER_TOOL])
    run = client.beta.threads.create_and_run_poll(
        assistant_id=both.id, thread={"messages": [{"role": "user", "content": "mixedcalls"}]}
    )
    assert run.status == "requires_action"
    pending = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in pending] == ["get_weather"]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": pending[0].id, "output": "cold"}],
    )
    assert run.status == "completed", run.last_error
    (step,) = [
        s
        for s in client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
        if s.type == "tool_calls"
    ]
    code, weather = step.step_details.tool_calls
    assert code.type == "code_interpreter" and code.code_interpreter.outputs[0].logs == "25\n"
    assert weather.type == "function" and weather.function.output == "cold"
    # The model got both results.
    last = upstream.requests()[-1]["body"]["messages"]
    assert [(m["role"], m.get("content")) for m in last[-2:]] == [("tool", "25"), ("tool", "cold")]
