"""Runs through the official SDK against the real service and a scripted upstream process.

Plain answers, the streaming event order of the reference, function tools (split and
parallel calls), parameters reaching the upstream, and run/step reads; SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler
from typing_extensions import override

from tests.fakes.process import FakeUpstream
from tests.runs.conftest import WEATHER_TOOL
from tests.runs.sse import (
    assert_event_shapes,
    collapse,
    reference_order,
    stream_events,
)
from tests.support.openapi import assert_matches
from tests.support.processes import ServiceProcess

SCRIPT = [
    {"match": "plain", "text": "Four.", "chunks": 2},
    {"match": "bare assistant", "text": "Hi.", "repeat": True},
    {"match": "order", "text": "Hello! How can I help you today?", "chunks": 8},
    {"match": "handler", "text": "Streaming through the helper.", "chunks": 6},
    {"match": "fresh", "text": "A new thread.", "chunks": 3},
    {
        "match": "weather",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "chunks": 5}],
    },
    {"match": "weather", "text": "Sunny in Paris.", "chunks": 3},
    {
        "match": "parallel",
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Oslo"}, "chunks": 2},
            {"name": "get_weather", "arguments": {"city": "Rome"}, "chunks": 4},
        ],
    },
    {"match": "parallel", "text": "Cold in Oslo, warm in Rome.", "chunks": 4},
    {
        "match": "rawtools",
        "tool_calls": [
            {"name": "get_weather", "arguments": {"city": "Bonn"}, "chunks": 2},
            {"name": "get_weather", "arguments": {"city": "Graz"}, "chunks": 2},
        ],
    },
    {"match": "busy", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Nice"}}]},
    {"match": "params", "text": '{"ok": true}'},
    {"match": "toolong", "text": "cut off", "chunks": 2, "finish_reason": "length"},
    {"match": "reads", "text": "ok"},
    {"match": "racing", "text": "Only one.", "first_token_delay": 0.5},
    {"match": "andpoll", "text": "Polled.", "chunks": 2},
    {"match": "andstream", "text": "Streamed.", "chunks": 2},
]


AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(
        model="fake-model", instructions="You are terse.", tools=[WEATHER_TOOL]
    )


def last_request(upstream: FakeUpstream, word: str) -> dict[str, Any]:
    bodies = [r["body"] for r in upstream.chat_requests()]
    matching = [b for b in bodies if any(word in str(m.get("content")) for m in b["messages"])]
    assert matching, f"the upstream never saw {word!r}"
    return matching[-1]


def test_create_and_poll_plain_answer(
    client: openai.OpenAI, assistant: Any, upstream: FakeUpstream, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plain: 2 + 2?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    assert run.started_at and run.completed_at and run.expires_at is None
    assert run.usage and run.usage.total_tokens > 0
    messages = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in messages] == ["user", "assistant"]
    answer = messages[1]
    assert answer.content[0].text.value == "Four."
    assert (answer.run_id, answer.assistant_id, answer.status) == (
        run.id,
        assistant.id,
        "completed",
    )
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert [(s.type, s.status) for s in steps] == [("message_creation", "completed")]
    assert steps[0].step_details.message_creation.message_id == answer.id
    body = last_request(upstream, "plain: 2 + 2?")
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    raw = httpx.get(f"{runs_service.base_url}/v1/threads/{thread.id}/runs/{run.id}", headers=AUTH)
    assert raw.headers["openai-poll-after-ms"]
    assert_matches("RunObject", raw.json())


def test_a_run_of_an_assistant_without_instructions_says_so_as_the_reference_does(
    client: openai.OpenAI, runs_service: ServiceProcess
) -> None:
    bare = client.beta.assistants.create(model="fake-model")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "bare assistant"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=bare.id, poll_interval_ms=50
    )
    assert run.status == "completed", run.last_error
    raw = httpx.get(f"{runs_service.base_url}/v1/threads/{thread.id}/runs/{run.id}", headers=AUTH)
    assert raw.json()["instructions"] == ""
    assert_matches("RunObject", raw.json())


def test_stream_event_order_matches_the_reference(
    client: openai.OpenAI, assistant: Any, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "order please"}])
    events = stream_events(
        runs_service.base_url, f"threads/{thread.id}/runs", {"assistant_id": assistant.id}
    )
    names = [name for name, _ in events]
    assert collapse(names) == reference_order("/threads/{thread_id}/runs")
    assert names.count("thread.message.delta") == 8
    assert_event_shapes(events)
    # Each run event carries the run as it was at that moment, not its later state.
    statuses = {
        n: d["status"] for n, d in events if n.startswith("thread.run.") and "." not in n[11:]
    }
    assert statuses["thread.run.created"] == statuses["thread.run.queued"] == "queued"
    assert statuses["thread.run.in_progress"] == "in_progress"
    assert statuses["thread.run.completed"] == "completed"
    deltas = [d for n, d in events if n == "thread.message.delta"]
    assert all(d["delta"]["content"][0]["index"] == 0 for d in deltas)
    text = "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas)
    completed = next(d for n, d in events if n == "thread.message.completed")
    assert completed["content"][0]["text"]["value"] == text == "Hello! How can I help you today?"


class Recorder(AssistantEventHandler):
    """Records what the SDK's helper reports; any inconsistency raises inside the SDK."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.text = ""
        self.tool_calls_done: list[Any] = []
        self.tool_deltas = 0

    @override
    def on_event(self, event: Any) -> None:
        self.names.append(event.event)

    @override
    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.text += delta.value or ""

    @override
    def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
        self.tool_deltas += 1

    @override
    def on_tool_call_done(self, tool_call: Any) -> None:
        self.tool_calls_done.append(tool_call)


def test_sdk_stream_helper_consumes_a_run(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "handler test"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.text == "Streaming through the helper."
    final = stream.get_final_messages()
    assert final[0].content[0].text.value == handler.text
    assert stream.get_final_run().status == "completed"


def test_create_thread_and_run_streams_thread_created_first(
    client: openai.OpenAI, assistant: Any, runs_service: ServiceProcess
) -> None:
    events = stream_events(
        runs_service.base_url,
        "threads/runs",
        {
            "assistant_id": assistant.id,
            "thread": {"messages": [{"role": "user", "content": "fresh start"}]},
        },
    )
    assert collapse([n for n, _ in events]) == reference_order("/threads/runs")
    assert_event_shapes(events)
    thread_id = events[0][1]["id"]
    messages = client.beta.threads.messages.list(thread_id, order="asc").data
    assert [m.content[0].text.value for m in messages] == ["fresh start", "A new thread."]


def test_tool_calls_split_across_chunks_then_submit_stream(
    client: openai.OpenAI, assistant: Any, upstream: FakeUpstream
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Paris?"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    run = stream.get_final_run()
    assert run.status == "requires_action"
    assert collapse(handler.names)[-4:] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
    ]
    assert handler.tool_deltas >= 4
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    assert handler.tool_calls_done[0].function.arguments == call.function.arguments
    after = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "22C and sunny"}],
        event_handler=after,
    ) as stream:
        stream.until_done()
    assert (
        collapse(after.names)
        == reference_order("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")[:-1]
    )
    assert after.text == "Sunny in Paris."
    assert stream.get_final_run().status == "completed"
    body = last_request(upstream, "22C and sunny")
    assert body["messages"][-2]["tool_calls"][0]["id"] == call.id
    assert body["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call.id,
        "content": "22C and sunny",
    }
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    kinds = [(s.type, s.status) for s in steps.data]
    assert kinds == [("tool_calls", "completed"), ("message_creation", "completed")]
    assert steps.data[0].step_details.tool_calls[0].function.output == "22C and sunny"


def test_parallel_tool_calls_submit_and_poll(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "parallel cities"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Oslo", "Rome"]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "-3C"}],
        )
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            thread_id=thread.id,
            run_id=run.id,
            tool_outputs=[
                {"tool_call_id": calls[0].id, "output": "-3C"},
                {"tool_call_id": "call_unknown", "output": "?"},
            ],
        )
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[
            {"tool_call_id": calls[1].id, "output": "25C"},
            {"tool_call_id": calls[0].id, "output": "-3C"},
        ],
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    text = client.beta.threads.messages.list(thread.id).data[0].content[0].text.value
    assert text == "Cold in Oslo, warm in Rome."


def test_one_active_run_per_thread_and_cancel(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "busy thread"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError) as blocked:
        client.beta.threads.messages.create(thread.id, role="user", content="hello?")
    assert blocked.value.body["message"] == (
        f"Can't add messages to {thread.id} while a run {run.id} is active."
    )
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    cancelled = client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at
    step = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
    assert step.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    client.beta.threads.messages.create(thread.id, role="user", content="now it works")


def test_run_parameters_reach_the_upstream(
    client: openai.OpenAI, assistant: Any, upstream: FakeUpstream
) -> None:
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "old question"},
            {"role": "assistant", "content": "old answer"},
        ]
    )
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        model="other-model",
        instructions="Answer in JSON.",
        additional_instructions="Be brief.",
        additional_messages=[{"role": "user", "content": "params check"}],
        temperature=0.3,
        top_p=0.9,
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        truncation_strategy={"type": "last_messages", "last_messages": 1},
        max_completion_tokens=256,
        metadata={"k": "v"},
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    assert (run.model, run.instructions, run.metadata) == (
        "other-model",
        "Answer in JSON.\n\nBe brief.",
        {"k": "v"},
    )
    body = last_request(upstream, "params check")
    assert body["model"] == "other-model"
    assert body["messages"] == [
        {"role": "system", "content": "Answer in JSON.\n\nBe brief."},
        {"role": "user", "content": "params check"},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 256)
    assert body["response_format"]["type"] == "json_schema"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["name"] == "get_weather"


def test_token_limits_end_runs_incomplete(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "toolong answer"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    message = client.beta.threads.messages.list(thread.id).data[0]
    assert message.status == "incomplete" and message.content[0].text.value == "cut off"
    huge = client.beta.threads.create(messages=[{"role": "user", "content": "x" * 20_000}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=huge.id, assistant_id=assistant.id, max_prompt_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_prompt_tokens"


def test_list_retrieve_modify_runs_and_steps(client: openai.OpenAI, assistant: Any) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "reads"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    listed = client.beta.threads.runs.list(thread.id)
    assert [r.id for r in listed.data] == [run.id]
    updated = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"a": "b"})
    assert updated.metadata == {"a": "b"}
    step = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
    fetched = client.beta.threads.runs.steps.retrieve(
        step_id=step.id, run_id=run.id, thread_id=thread.id
    )
    assert fetched == step and step.usage and step.usage.total_tokens > 0
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve("run_missing", thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_missing")


def test_tool_call_stream_shapes(
    client: openai.OpenAI, assistant: Any, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "rawtools now"}])
    events = stream_events(
        runs_service.base_url, f"threads/{thread.id}/runs", {"assistant_id": assistant.id}
    )
    assert_event_shapes(events)
    assert collapse([n for n, _ in events]) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
        "done",
    ]
    created = next(d for n, d in events if n == "thread.run.step.created")
    assert created["step_details"] == {"type": "tool_calls", "tool_calls": []}
    deltas = [d["delta"]["step_details"]["tool_calls"][0] for n, d in events if n.endswith("delta")]
    heads = [d for d in deltas if "id" in d]
    assert [h["index"] for h in heads] == [0, 1]
    assert all(h["function"]["name"] == "get_weather" for h in heads)
    arguments = ["", ""]
    for d in deltas:
        arguments[d["index"]] += d["function"]["arguments"]
    assert arguments == ['{"city": "Bonn"}', '{"city": "Graz"}']
    required = events[-2][1]["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["id"] for c in required] == [h["id"] for h in heads]


def test_thread_and_run_helpers(client: openai.OpenAI, assistant: Any) -> None:
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "andpoll"}]},
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    messages = client.beta.threads.messages.list(run.thread_id).data
    assert messages[0].content[0].text.value == "Polled."
    handler = Recorder()
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "andstream"}]},
        event_handler=handler,
    ) as stream:
        stream.until_done()
    assert handler.names[0] == "thread.created"
    assert handler.text == "Streamed."


def test_concurrent_run_creations_on_one_thread_start_one_run(
    client: openai.OpenAI, assistant: Any, runs_service: ServiceProcess
) -> None:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "racing"}])
    url = f"{runs_service.base_url}/v1/threads/{thread.id}/runs"

    def create(_: int) -> int:
        body = {"assistant_id": assistant.id}
        return httpx.post(url, json=body, headers=AUTH, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = sorted(pool.map(create, range(8)))
    assert codes == [200] + [400] * 7
    (run,) = client.beta.threads.runs.list(thread.id).data
    run = client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    assert run.status == "completed"
