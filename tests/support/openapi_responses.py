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
from jsonschema.exceptions import best_match

from tests.support.openapi import REFERENCE as ASSISTANTS_REFERENCE
from tests.support.openapi import SchemaMismatch, _nullable_to_json_schema

__all__ = ["Checked", "assert_event", "assert_matches", "conformance_hook"]

REFERENCE = ASSISTANTS_REFERENCE.with_name("openai-responses-openapi.json")
# Lists whose first_id/last_id OpenAI sends as null when empty, as the assistants lists.
ITEM_LISTS = ("ResponseItemList", "ConversationItemList")


@cache
def _document() -> dict[str, Any]:
    return json.loads(REFERENCE.read_text())


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
    errors = list(_validator(name).iter_errors(payload))
    if errors:
        error = best_match(errors)
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SchemaMismatch(
            f"{name} mismatch at {where}: {error.message}\npayload: {json.dumps(payload)[:2000]}"
        )


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
def _operations() -> list[tuple[str, re.Pattern[str], dict[str, Any]]]:
    out = []
    for template, item in _document()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                out.append((method.upper(), pattern, operation))
    out.sort(key=lambda op: op[1].pattern.count("[^/]+"))
    return out


def schema_for(method: str, path: str, status: int) -> str | None:
    path = path.removeprefix("/v1") or "/"
    for op_method, pattern, operation in _operations():
        if op_method != method.upper() or not pattern.match(path):
            continue
        if status >= 400:
            return "ErrorResponse"
        response = operation["responses"].get(str(status)) or {}
        schema = response.get("content", {}).get("application/json", {}).get("schema") or {}
        return schema["$ref"].rsplit("/", 1)[-1] if "$ref" in schema else None
    return None


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
