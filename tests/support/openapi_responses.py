"""Check payloads against OpenAI's Responses OpenAPI document (the Responses reference).

The same conversion as ``tests.support.openapi`` (3.0 ``nullable``), for the second
document: ``assert_matches("Response", body)``, ``assert_event(data)`` for a streamed
event, and ``conformance_hook`` for every JSON response an SDK client receives.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from tests.support.openapi import REFERENCE as ASSISTANTS_REFERENCE
from tests.support.openapi import (
    Operation,
    _nullable_to_json_schema,
    _reference_path,
    check_with,
    operations_of,
    schema_name_in,
)

__all__ = ["Checked", "assert_event", "assert_matches", "conformance_hook"]

REFERENCE = ASSISTANTS_REFERENCE.with_name("openai-responses-openapi.json")
# Lists whose first_id/last_id OpenAI sends as null when empty, as the assistants lists.
ITEM_LISTS = ("ResponseItemList", "ConversationItemList")


@cache
def _document() -> dict[str, Any]:
    # Beside the assistants reference, wherever that one was found.
    return json.loads(_reference_path().with_name(REFERENCE.name).read_text())


@cache
def _components() -> dict[str, Any]:
    schemas = copy.deepcopy(_document()["components"]["schemas"])
    for name in ITEM_LISTS:
        for key in ("first_id", "last_id"):
            prop = schemas[name]["properties"][key]
            schemas[name]["properties"][key] = {"anyOf": [prop, {"type": "null"}]}
    return {"schemas": _nullable_to_json_schema(schemas)}


@cache
def _validator(name: str) -> Draft202012Validator:
    if name not in _components()["schemas"]:
        raise KeyError(f"no schema {name!r} in {REFERENCE.name}")
    root = {"$ref": f"#/components/schemas/{name}", "components": _components()}
    return Draft202012Validator(root)


def assert_matches(name: str, payload: Any) -> None:
    check_with(_validator(name), name, payload)


def _event_schema(event_type: str) -> str:
    """response.output_text.delta -> ResponseTextDeltaEvent, as the document names them."""
    special = {
        "response.output_text.delta": "ResponseTextDeltaEvent",
        "response.output_text.done": "ResponseTextDoneEvent",
        "error": "ResponseErrorEvent",
    }
    if event_type in special:
        return special[event_type]
    words = re.split(r"[._]", event_type.removeprefix("response."))
    return "Response" + "".join(w.capitalize() for w in words) + "Event"


def assert_event(data: dict[str, Any]) -> str:
    name = _event_schema(data["type"])
    assert_matches(name, data)
    return name


@cache
def _operations() -> list[Operation]:
    return operations_of(_document())


def schema_for(method: str, path: str, status: int) -> str | None:
    return schema_name_in(_operations(), method, path, status)


class Checked:
    """The schemas a ``conformance_hook`` validated, so tests can show checks happened."""

    def __init__(self) -> None:
        self.names: list[str] = []


def conformance_hook(checked: Checked | None = None):  # type: ignore[no-untyped-def]
    def hook(response: httpx.Response) -> None:
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        response.read()
        request = response.request
        name = schema_for(request.method, request.url.path, response.status_code)
        if name is not None:
            assert_matches(name, response.json())
            if checked is not None:
                checked.names.append(name)

    return hook
