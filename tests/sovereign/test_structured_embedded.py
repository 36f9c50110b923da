"""Structured outputs on the real embedded runtime (llama.cpp, bundled gemma-3-270m),
through sovereign: decoding constrained to the schema, so every answer parses and
validates; function calls forced by tool_choice carry valid arguments."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from jsonschema import Draft202012Validator

from tests.fakes.sovereign import run_embedded, run_sovereign

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama_cpp is not importable: install the extra with pip install -e '.[embedded]'",
    ),
]

SCHEMAS: dict[str, dict[str, Any]] = {
    "person": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
            "active": {"type": "boolean"},
        },
        "required": ["name", "age", "role", "active"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "city": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "location": {
                        "type": "object",
                        "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                        "required": ["lat", "lon"],
                    },
                },
                "required": ["name", "location"],
            }
        },
        "required": ["city"],
    },
    "shopping": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "product": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "unit": {"type": "string", "enum": ["kg", "piece", "litre"]},
                    },
                    "required": ["product", "quantity", "unit"],
                },
            }
        },
        "required": ["items"],
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}


@pytest.fixture(scope="module")
def sdk() -> Iterator[openai.OpenAI]:
    with (
        run_embedded() as runtime,
        run_sovereign(env={"SOVEREIGN_BACKEND_URL": runtime.base_url}) as sv,
    ):
        yield openai.OpenAI(base_url=sv.base_url, api_key="x", max_retries=0, timeout=900)


def _model(sdk: openai.OpenAI) -> str:
    return sdk.models.list().data[0].id


def _valid(schema: dict[str, Any], value: Any) -> None:
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(value)]
    assert not errors, (value, errors)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_answer_parses_and_validates(sdk: openai.OpenAI, name: str) -> None:
    schema = SCHEMAS[name]
    completion = sdk.chat.completions.create(
        model=_model(sdk),
        messages=[{"role": "user", "content": f"Give an example {name} as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        },
    )
    _valid(schema, json.loads(completion.choices[0].message.content))


def test_a_streamed_structured_answer_validates(sdk: openai.OpenAI) -> None:
    schema = SCHEMAS["person"]
    stream = sdk.chat.completions.create(
        model=_model(sdk),
        messages=[{"role": "user", "content": "Describe the site's editor."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    _valid(schema, json.loads(text))


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_weather"}}]
)
def test_a_forced_call_has_valid_arguments(sdk: openai.OpenAI, choice: Any) -> None:
    completion = sdk.chat.completions.create(
        model=_model(sdk),
        messages=[{"role": "user", "content": "Is it raining in Oslo?"}],
        tools=[WEATHER, CLOCK],
        tool_choice=choice,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    [call] = message.tool_calls
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, CLOCK)}
    if isinstance(choice, dict):
        assert call.function.name == "get_weather"
    _valid(schemas[call.function.name], json.loads(call.function.arguments))


def test_auto_gives_a_message_or_a_valid_call(sdk: openai.OpenAI) -> None:
    for question in ("What is the weather in Paris?", "Say hello."):
        completion = sdk.chat.completions.create(
            model=_model(sdk),
            messages=[{"role": "user", "content": question}],
            tools=[WEATHER],
            tool_choice="auto",
        )
        message = completion.choices[0].message
        if message.tool_calls:
            [call] = message.tool_calls
            assert call.function.name == "get_weather"
            _valid(WEATHER["function"]["parameters"], json.loads(call.function.arguments))
        else:
            assert message.content and not message.content.lstrip().startswith("{")
