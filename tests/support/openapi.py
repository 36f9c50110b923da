"""Check payloads against OpenAI's published Assistants OpenAPI document (the reference).

``assert_matches("RunObject", body)`` validates one object; ``assert_response_conforms``
finds the operation a real HTTP response answered and validates its body; and
``conformance_hook`` does that for every response an ``httpx.Client`` (or the openai SDK
built on one) receives.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

__all__ = [
    "REFERENCE",
    "SchemaMismatch",
    "assert_matches",
    "assert_response_conforms",
    "conformance_hook",
    "response_schema_name",
    "schema_names",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = PROJECT_ROOT.parent / "shared" / "reference" / "openai-assistants-openapi.json"

# Where the published document disagrees with what OpenAI's API actually sent (and what
# the SDK accepts): an empty list page has null first_id/last_id, not strings.
NULLABLE_ON_EMPTY_PAGE = ("first_id", "last_id")


class SchemaMismatch(AssertionError):
    """A payload that does not match its schema in the reference document."""


def _reference_path() -> Path:
    # The reference sits in the shared folder beside the checkout; a copy in the project
    # root (for CI machines without that folder) is honoured too.
    for candidate in (REFERENCE, PROJECT_ROOT / "reference" / REFERENCE.name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"the OpenAPI reference is not at {REFERENCE}")


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema: the same schema, or null.

    The reference is mostly 3.1 (``anyOf [..., {type: null}]``) but keeps 3.0-style
    ``nullable`` in places, including ``allOf [{$ref}, {nullable: true}]``, where the
    nullable member makes the whole ``allOf`` nullable.
    """
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    nullable = converted.pop("nullable", False)
    members = node.get("allOf")
    if isinstance(members, list) and any(
        isinstance(m, dict) and m.get("nullable") for m in members
    ):
        nullable = True
        # A member saying only "nullable" constrains nothing else; drop it.
        converted["allOf"] = [
            _nullable_to_json_schema(m)
            for m in members
            if not (isinstance(m, dict) and set(m) <= {"nullable", "description"})
        ]
    if nullable:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _schemas(document: dict[str, Any]) -> dict[str, Any]:
    schemas = copy.deepcopy(document["components"]["schemas"])
    for name, schema in schemas.items():
        if name.startswith("List") and name.endswith("Response"):
            for key in NULLABLE_ON_EMPTY_PAGE:
                if key in schema.get("properties", {}):
                    schema["properties"][key] = {
                        "anyOf": [schema["properties"][key], {"type": "null"}]
                    }
    return _nullable_to_json_schema(schemas)


@cache
def _document() -> dict[str, Any]:
    return json.loads(_reference_path().read_text())


@cache
def _components() -> dict[str, Any]:
    return {"schemas": _schemas(_document())}


@cache
def _validator(schema_name: str) -> Draft202012Validator:
    if schema_name not in _components()["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in {REFERENCE.name}")
    # Refs in the document are "#/components/schemas/X": keep them resolvable from the root.
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(root)


def schema_names() -> list[str]:
    return sorted(_components()["schemas"])


def assert_matches(schema_name: str, payload: Any) -> None:
    """Raise ``SchemaMismatch`` naming the first problem unless ``payload`` fits the schema."""
    check_with(_validator(schema_name), schema_name, payload)


def check_with(validator: Draft202012Validator, schema_name: str, payload: Any) -> None:
    """``assert_matches`` for any reference document's validator."""
    errors = list(validator.iter_errors(payload))
    if errors:
        error = best_match(errors)
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise SchemaMismatch(
            f"{schema_name} mismatch at {where}: {error.message}\n"
            f"payload: {json.dumps(payload)[:2000]}"
        )


Operation = tuple[str, re.Pattern[str], dict[str, Any]]


def operations_of(document: dict[str, Any]) -> list[Operation]:
    """A document's operations as (method, path pattern, operation), literal paths first."""
    operations = []
    for template, item in document["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                operations.append((method.upper(), pattern, operation))
    # Literal segments beat parameters: /threads/runs is not /threads/{thread_id}.
    operations.sort(key=lambda op: op[1].pattern.count("[^/]+"))
    return operations


@cache
def _operations() -> list[Operation]:
    return operations_of(_document())


def schema_name_in(operations: list[Operation], method: str, path: str, status: int) -> str | None:
    """The schema a document names for a response, or None when it names none.

    ``path`` may carry the ``/v1`` prefix. Failures (4xx and 5xx) are ``ErrorResponse``
    on every operation: OpenAI's error shape, listed or not.
    """
    path = path.removeprefix("/v1") or "/"
    for op_method, pattern, operation in operations:
        if op_method != method.upper() or not pattern.match(path):
            continue
        if status >= 400:
            return "ErrorResponse"
        response = operation["responses"].get(str(status))
        schema = (response or {}).get("content", {}).get("application/json", {}).get("schema")
        if schema and "$ref" in schema:
            return schema["$ref"].rsplit("/", 1)[-1]
        return None
    return None


def response_schema_name(method: str, path: str, status: int) -> str | None:
    """The assistants reference's schema for a response (see ``schema_name_in``)."""
    return schema_name_in(_operations(), method, path, status)


def assert_response_conforms(response: httpx.Response) -> str | None:
    """Validate a JSON response against its operation's schema; returns the schema's name.

    Routes the reference does not know (health, docs) and event streams are skipped
    (None); stream events are checked one by one with ``assert_matches``.
    """
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("application/json"):
        return None
    request = response.request
    name = response_schema_name(request.method, request.url.path, response.status_code)
    if name is not None:
        assert_matches(name, response.json())
    return name


class ConformanceLog:
    """What a ``conformance_hook`` has checked, so a test can prove checks happened."""

    def __init__(self) -> None:
        self.checked: list[tuple[str, str, int, str]] = []

    def schemas(self) -> set[str]:
        return {name for *_, name in self.checked}


def conformance_hook(log: ConformanceLog | None = None):  # type: ignore[no-untyped-def]
    """An httpx response hook validating every JSON response against the reference."""

    def hook(response: httpx.Response) -> None:
        if not response.headers.get("content-type", "").startswith("application/json"):
            return
        response.read()
        name = assert_response_conforms(response)
        if name is not None and log is not None:
            request = response.request
            log.checked.append((request.method, request.url.path, response.status_code, name))

    return hook
