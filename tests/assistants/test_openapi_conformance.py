"""Every assistants, threads and messages endpoint answers in the reference OpenAPI's shapes."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.openapi import (
    ConformanceLog,
    SchemaMismatch,
    assert_matches,
    response_schema_name,
)
from tests.support.processes import ServiceProcess

# (method, path template) of every operation this layer serves, as the reference names them.
OPERATIONS = [
    ("POST", "/assistants"),
    ("GET", "/assistants"),
    ("GET", "/assistants/{assistant_id}"),
    ("POST", "/assistants/{assistant_id}"),
    ("DELETE", "/assistants/{assistant_id}"),
    ("POST", "/threads"),
    ("GET", "/threads/{thread_id}"),
    ("POST", "/threads/{thread_id}"),
    ("DELETE", "/threads/{thread_id}"),
    ("POST", "/threads/{thread_id}/messages"),
    ("GET", "/threads/{thread_id}/messages"),
    ("GET", "/threads/{thread_id}/messages/{message_id}"),
    ("POST", "/threads/{thread_id}/messages/{message_id}"),
    ("DELETE", "/threads/{thread_id}/messages/{message_id}"),
]


def _template_of(method: str, path: str) -> tuple[str, str] | None:
    path = path.removeprefix("/v1")
    for op_method, template in OPERATIONS:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if op_method == method and re.match(pattern, path):
            return op_method, template
    return None


def test_validator_rejects_what_the_reference_rejects() -> None:
    thread = {
        "id": "thread_1",
        "object": "thread",
        "created_at": 1,
        "tool_resources": None,
        "metadata": {},
    }
    assert_matches("ThreadObject", thread)
    with pytest.raises(SchemaMismatch, match="created_at"):
        assert_matches("ThreadObject", {**thread, "created_at": "yesterday"})
    with pytest.raises(SchemaMismatch, match="at object"):
        assert_matches("ThreadObject", {**thread, "object": "assistant"})
    with pytest.raises(SchemaMismatch, match="metadata"):
        assert_matches("ThreadObject", {k: v for k, v in thread.items() if k != "metadata"})
    with pytest.raises(SchemaMismatch):
        assert_matches("ErrorResponse", {"error": {"message": "x", "type": "t"}})
    # An empty page's cursors are null, as OpenAI sent them.
    assert_matches(
        "ListMessagesResponse",
        {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False},
    )


def test_openapi_3_0_nullable_is_honoured() -> None:
    # RunObject keeps 3.0-style `nullable: true` (also inside allOf): null passes, a wrong
    # type still fails.
    schema = "RunObject"
    assert response_schema_name("POST", "/v1/threads/runs", 200) == schema
    with pytest.raises(SchemaMismatch, match="expires_at"):
        assert_matches(schema, {"expires_at": "soon"})
    with pytest.raises(SchemaMismatch) as missing:
        assert_matches(schema, {"expires_at": None, "truncation_strategy": None})
    assert "expires_at" not in str(missing.value).split("\n")[0]


def test_every_endpoint_conforms(
    api: httpx.Client, conformance: ConformanceLog, assistants_service: ServiceProcess
) -> None:
    assistant = api.post(
        "/assistants",
        json={
            "model": "m",
            "name": "n",
            "tools": [
                {"type": "code_interpreter"},
                {"type": "file_search", "file_search": {"max_num_results": 5}},
                {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}},
            ],
            "tool_resources": {"code_interpreter": {"file_ids": ["file-1"]}},
            "response_format": {"type": "json_object"},
            "metadata": {"k": "v"},
        },
    ).json()
    api.post(
        "/assistants",
        json={
            "model": "m",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
            },
        },
    ).raise_for_status()
    assert api.get("/assistants", params={"limit": 1}).json()["has_more"] is True
    api.get(f"/assistants/{assistant['id']}").raise_for_status()
    api.post(f"/assistants/{assistant['id']}", json={"instructions": "be brief"}).raise_for_status()

    thread = api.post(
        "/threads",
        json={
            "messages": [
                {
                    "role": "user",
                    "content": "hello",
                    "attachments": [{"file_id": "file-1", "tools": [{"type": "file_search"}]}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                        {
                            "type": "image_file",
                            "image_file": {"file_id": "file-2", "detail": "low"},
                        },
                    ],
                },
            ],
            "metadata": {"a": "b"},
        },
    ).json()
    tid = thread["id"]
    api.get(f"/threads/{tid}").raise_for_status()
    api.post(f"/threads/{tid}", json={"metadata": {}}).raise_for_status()
    message = api.post(f"/threads/{tid}/messages", json={"role": "user", "content": "x"}).json()
    listed = api.get(f"/threads/{tid}/messages", params={"order": "asc"}).json()
    assert [len(m["content"]) for m in listed["data"]] == [1, 3, 1]
    empty = api.get(f"/threads/{tid}/messages", params={"run_id": "run_none"}).json()
    assert (empty["data"], empty["first_id"], empty["last_id"]) == ([], None, None)
    mid = message["id"]
    api.get(f"/threads/{tid}/messages/{mid}").raise_for_status()
    api.post(f"/threads/{tid}/messages/{mid}", json={"metadata": {"x": "y"}}).raise_for_status()
    api.delete(f"/threads/{tid}/messages/{mid}").raise_for_status()
    api.delete(f"/threads/{tid}").raise_for_status()
    api.delete(f"/assistants/{assistant['id']}").raise_for_status()

    # Failures on every operation: unknown ids (404) and bodies that are wrong (400).
    missing = {"assistant_id": "asst_nope", "thread_id": "thread_nope", "message_id": "msg_nope"}
    for method, template in OPERATIONS:
        if "{" not in template:
            continue
        body = None
        if method == "POST":
            body = {"role": "user", "content": "x"} if template.endswith("messages") else {}
        response = api.request(method, template.format(**missing), json=body)
        assert response.status_code == 404, (method, template, response.text)
    assert api.post("/assistants", json={"model": 7}).status_code == 400
    assert api.post("/threads", json={"messages": "no"}).status_code == 400
    unauthorized = httpx.get(f"{assistants_service.base_url}/v1/assistants")
    assert unauthorized.status_code == 401

    successes = {_template_of(m, p) for m, p, status, _ in conformance.checked if status == 200}
    failures = {_template_of(m, p) for m, p, status, _ in conformance.checked if status >= 400}
    assert set(OPERATIONS) <= successes, set(OPERATIONS) - successes
    assert {op for op in OPERATIONS if "{" in op[1]} <= failures
    assert_matches("ErrorResponse", unauthorized.json())


def test_openapi_json_declares_every_route(assistants_service: ServiceProcess) -> None:
    document = httpx.get(f"{assistants_service.base_url}/openapi.json").json()
    assert document["info"]["title"]
    declared = {
        (method.upper(), path.removeprefix("/v1"))
        for path, item in document["paths"].items()
        for method in item
        if path.startswith("/v1/")
    }
    assert set(OPERATIONS) <= declared
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation["responses"]["200"]["content"]
            if path.endswith("/content"):  # a file's bytes, not JSON
                assert "application/octet-stream" in content, (method, path, content)
                continue
            schema = content["application/json"]["schema"]
            assert schema, (method, path)
            if path.startswith("/v1/"):
                # A response model is declared (a $ref), not an untyped object; failures
                # are documented in OpenAI's shape, and FastAPI's 422 (never sent) is gone.
                assert "$ref" in schema, (method, path, schema)
                responses = operation["responses"]
                assert {"400", "401", "404"} <= set(responses) and "422" not in responses
                error = responses["400"]["content"]["application/json"]["schema"]
                assert error == {"$ref": "#/components/schemas/ErrorResponse"}
                assert operation["security"], (method, path)
    docs = httpx.get(f"{assistants_service.base_url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
