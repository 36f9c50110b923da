"""The Responses API through the official SDK against a scripted upstream, on SQLite and
PostgreSQL: text, streams, chaining, store=false, input items, function calls, limits,
errors, background responses; every JSON answer checked against the Responses reference."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.responses.conftest import raw_events, upstream_messages
from tests.runs.conftest import BASE_ENV
from tests.support.openapi_responses import Checked, assert_matches
from tests.support.processes import ServiceProcess

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
SLOW = {"chunks": 60, "tokens_per_s": 10}
SCRIPT = [
    {"match": "plain", "text": "Hello from upstream", "chunks": 3},
    {"match": "streamed", "text": "one two three four", "chunks": 4},
    {"match": "rawstream", "text": "raw stream answer", "chunks": 3},
    {"match": "first turn", "text": "Paris is nice."},
    {"match": "second turn", "text": "It has the Louvre."},
    {"match": "ephemeral", "text": "Not kept."},
    {"match": "ephemeral follow", "text": "Still not kept."},
    {"match": "listing", "text": "Listed."},
    {"match": "weather", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Bern"}}]},
    {"match": "weather", "text": "It is sunny in Bern."},
    {"match": "forecast", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    {"match": "short", "text": "a b c d e f", "chunks": 6, "finish_reason": "length"},
    {"match": "background job", "text": "Done in the background.", "chunks": 2},
    {"match": "cancel me", "text": "x " * 60, **SLOW},
    {"match": "options", "text": "ok"},
    {"match": "broken", "status": 500},
    {"match": "slow to answer", "text": "At last.", "delay": 2},
]


def test_text_response_and_retrieve(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(
        model="fake-model",
        input="plain question",
        instructions="Answer briefly.",
        metadata={"topic": "greeting"},
    )
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == "Hello from upstream"
    assert response.metadata == {"topic": "greeting"}
    assert response.instructions == "Answer briefly."
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    messages = upstream_messages(upstream, "plain question")
    assert messages == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "plain question"},
    ]
    again = client.responses.retrieve(response.id)
    assert again.model_dump() == response.model_dump()


def test_options_reach_the_upstream(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(
        model="fake-model",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "options please"}]}],
        temperature=0.3,
        top_p=0.9,
        max_output_tokens=50,
        text={
            "format": {
                "type": "json_schema",
                "name": "answer",
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                "strict": True,
            }
        },
        truncation="auto",
        parallel_tool_calls=False,
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    assert response.temperature == 0.3 and response.top_p == 0.9
    assert response.max_output_tokens == 50 and response.truncation == "auto"
    assert response.tool_choice.name == "get_weather"
    body = next(r["body"] for r in upstream.chat_requests() if "options please" in str(r["body"]))
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["max_tokens"] == 50
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "answer"
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


def test_stream_helper(client: openai.OpenAI) -> None:
    with client.responses.stream(model="fake-model", input="streamed please") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types.count("response.output_text.delta") == 4
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "one two three four"
    assert client.responses.retrieve(final.id).output_text == "one two three four"


def test_raw_stream_events_match_the_reference(runs_service: ServiceProcess) -> None:
    events = raw_events(runs_service, {"model": "fake-model", "input": "rawstream now"})
    assert events[0]["type"] == "response.created"
    assert events[0]["response"]["status"] == "in_progress"
    assert events[-1]["type"] == "response.completed"
    assert_matches("Response", events[-1]["response"])
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "raw stream answer"


def test_previous_response_id_chains_turns(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first = client.responses.create(
        model="fake-model", input="first turn: tell me of Paris", instructions="Be a guide."
    )
    second = client.responses.create(
        model="fake-model", input="second turn: and more?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.output_text == "It has the Louvre."
    # The earlier turn reached the model; its instructions did not carry over.
    assert upstream_messages(upstream, "second turn") == [
        {"role": "user", "content": "first turn: tell me of Paris"},
        {"role": "assistant", "content": "Paris is nice."},
        {"role": "user", "content": "second turn: and more?"},
    ]


def test_store_false_keeps_nothing(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(model="fake-model", input="ephemeral", store=False)
    assert response.output_text == "Not kept." and response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(
            model="fake-model", input="ephemeral follow", previous_response_id=response.id
        )
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="fake-model", input="x", store=False, background=True)


def test_input_items_list(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="fake-model",
        input=[
            {"role": "developer", "content": "Use lists."},
            {"role": "user", "content": "listing one"},
            {"role": "assistant", "content": "noted"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "listing"}],
            },
        ],
    )
    newest_first = client.responses.input_items.list(response.id)
    assert [i.role for i in newest_first.data] == ["user", "assistant", "user", "developer"]
    oldest_first = client.responses.input_items.list(response.id, order="asc", limit=2)
    assert [i.role for i in oldest_first.data] == ["developer", "user"]
    assert oldest_first.has_more
    paged = [i.id for i in client.responses.input_items.list(response.id, order="asc", limit=1)]
    assert paged == [i.id for i in reversed(newest_first.data)]
    assert newest_first.data[1].content[0].type == "output_text"


def test_function_call_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    asked = client.responses.create(model="fake-model", input="weather in Bern?", tools=[WEATHER])
    assert asked.status == "completed", asked.error
    [call] = asked.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Bern"}
    assert call.id.startswith("fc_") and call.call_id
    answered = client.responses.create(
        model="fake-model",
        previous_response_id=asked.id,
        tools=[WEATHER],
        input=[
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky":"sun"}'}
        ],
    )
    assert answered.output_text == "It is sunny in Bern."
    messages = [r["body"]["messages"] for r in upstream.chat_requests()][-1]
    assert messages[-2]["tool_calls"][0]["id"] == call.call_id
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "get_weather"
    tool_message = {"role": "tool", "tool_call_id": call.call_id, "content": '{"sky":"sun"}'}
    assert messages[-1] == tool_message
    [item] = client.responses.input_items.list(answered.id).data
    assert item.type == "function_call_output" and item.call_id == call.call_id


def test_function_call_streamed(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="fake-model", input="forecast for Oslo", tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"city": "Oslo"} and done.name == "get_weather"
    assert final.output[0].type == "function_call"
    # strict tools are parsed by the SDK's helper
    assert final.output[0].parsed_arguments == {"city": "Oslo"}


def test_max_output_tokens_makes_it_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(model="fake-model", input="short one", max_output_tokens=6)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"


def test_upstream_failure_fails_the_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="fake-model", input="broken upstream")
    assert response.status == "failed"
    assert response.error.code == "server_error"


def test_bad_requests_are_clear(client: openai.OpenAI, runs_service: ServiceProcess) -> None:
    for tool in ({"type": "web_search"}, {"type": "computer_use_preview"}, {"type": "mcp"}):
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="fake-model", input="x", tools=[tool])
        assert caught.value.body["param"] == "tools[0].type"
        assert tool["type"] in caught.value.body["message"]
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="fake-model", input="x", previous_response_id="resp_nope")
    assert missing.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="fake-model", input=[{"type": "web_search_call"}])
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="fake-model", input="x", include=["no.such.thing"])
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="fake-model", input="x", tool_choice="sometimes")
    reply = httpx.post(
        f"{runs_service.base_url}/v1/responses",
        json={"input": "no model"},
        headers={"Authorization": "Bearer test-key"},
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "model"
    assert_matches("ErrorResponse", reply.json())


def test_input_tokens(client: openai.OpenAI) -> None:
    small = client.responses.input_tokens.count(model="fake-model", input="hi")
    large = client.responses.input_tokens.count(
        model="fake-model", input="hi " * 400, instructions="Be brief."
    )
    assert small.object == "response.input_tokens"
    assert 0 < small.input_tokens < large.input_tokens


def test_background_response_is_polled_to_completion(client: openai.OpenAI) -> None:
    response = client.responses.create(model="fake-model", input="background job", background=True)
    assert response.status == "queued" and response.background
    deadline = time.monotonic() + 20
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.1)
        response = client.responses.retrieve(response.id)
    assert response.status == "completed"
    assert response.output_text == "Done in the background."


def test_background_response_is_cancelled(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(model="fake-model", input="cancel me now", background=True)
    upstream.wait_for(lambda seen: any("cancel me" in str(r["body"]) for r in seen), timeout=10)
    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    assert upstream.cancelled("cancel me", timeout=10)
    time.sleep(BASE_ENV_LEASE)
    assert client.responses.retrieve(response.id).status == "cancelled"
    assert client.responses.cancel(response.id).status == "cancelled"
    done = client.responses.create(model="fake-model", input="plain question again")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(done.id)


def test_delete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="fake-model", input="listing to delete")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)


def test_every_json_answer_was_checked(checked: Checked) -> None:
    assert {"Response", "ResponseItemList", "TokenCountsResource", "ErrorResponse"} <= set(
        checked.names
    )


BASE_ENV_LEASE = float(BASE_ENV["RUN_LEASE_SECONDS"]) / 3 + 0.5


def test_a_response_is_stored_while_a_slow_upstream_has_not_answered(
    client: openai.OpenAI, runs_service: ServiceProcess
) -> None:
    """The row is written once the upstream takes the request, or soon after when it keeps
    even its headers back: response.created comes, and the response can be read, at once."""
    began = time.monotonic()
    with client.responses.stream(model="fake-model", input="slow to answer") as stream:
        first = next(iter(stream))
        assert first.type == "response.created"
        assert time.monotonic() - began < 1.5
        stored = client.responses.retrieve(first.response.id)
        assert stored.status == "in_progress"
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "At last."
    assert client.responses.retrieve(final.id).output_text == "At last."
