"""Failures in OpenAI's classes and shape: bad bodies name the parameter, unknown ids, bad keys."""

from __future__ import annotations

import httpx
import openai
import pytest

from services.assistants.api.json_route import MAX_DEPTH
from tests.support.processes import ServiceProcess


def _param(exc: pytest.ExceptionInfo[openai.APIStatusError]) -> str | None:
    return exc.value.body["param"]  # type: ignore[index]


def test_metadata_limits(openai_client: openai.OpenAI) -> None:
    at_limit = {f"k{i:02d}" + "x" * 60: "v" * 512 for i in range(16)}
    assert openai_client.beta.assistants.create(model="m", metadata=at_limit).metadata == at_limit
    too_much = [
        {str(i): "v" for i in range(17)},
        {"k" * 65: "v"},
        {"k": "v" * 513},
    ]
    thread = openai_client.beta.threads.create()
    for metadata in too_much:
        with pytest.raises(openai.BadRequestError) as assistant:
            openai_client.beta.assistants.create(model="m", metadata=metadata)
        assert _param(assistant) == "metadata"
        with pytest.raises(openai.BadRequestError) as modified:
            openai_client.beta.threads.update(thread.id, metadata=metadata)
        assert _param(modified) == "metadata"
        with pytest.raises(openai.BadRequestError) as message:
            openai_client.beta.threads.messages.create(
                thread.id, role="user", content="x", metadata=metadata
            )
        assert _param(message) == "metadata"
    with pytest.raises(openai.BadRequestError) as nested:
        openai_client.beta.threads.create(
            messages=[{"role": "user", "content": "x", "metadata": too_much[1]}]
        )
    assert _param(nested) == "messages[0].metadata"
    with pytest.raises(openai.BadRequestError) as not_string:
        openai_client.beta.assistants.create(model="m", metadata={"n": 1})  # type: ignore[dict-item]
    assert _param(not_string) == "metadata.n"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/assistants", {}, "model"),
        ("/assistants", {"model": 7}, "model"),
        ("/assistants", {"model": "m", "temperature": "hot"}, "temperature"),
        ("/assistants", {"model": "m", "temperature": 3}, "temperature"),
        ("/assistants", {"model": "m", "tools": [{"type": "browser"}]}, "tools[0]"),
        ("/assistants", {"model": "m", "tools": {"type": "function"}}, "tools"),
        ("/assistants", {"model": "m", "response_format": "xml"}, "response_format"),
        (
            "/assistants",
            {"model": "m", "tools": [{"type": "function", "function": {"name": "a b"}}]},
            "tools[0].function.name",
        ),
        (
            "/assistants",
            {"model": "m", "tools": [{"type": "code_interpreter", "extra": 1}]},
            "tools[0].extra",
        ),
        (
            "/assistants",
            {"model": "m", "response_format": {"type": "json_schema", "json_schema": {}}},
            "response_format.json_schema.name",
        ),
        (
            "/threads/{thread}/messages",
            {"role": "user", "content": [{"type": "text", "text": 5}]},
            "content[0].text",
        ),
        ("/assistants", {"model": "m", "bogus": True}, "bogus"),
        ("/threads", {"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ("/threads", {"messages": [{"role": "user"}]}, "messages[0].content"),
        ("/threads", {"metadata": "x"}, "metadata"),
        (
            "/threads",
            {"tool_resources": {"code_interpreter": {"file_ids": "f"}}},
            "tool_resources.code_interpreter.file_ids",
        ),
        ("/threads/{thread}/messages", {"role": "user", "content": 5}, "content"),
        ("/threads/{thread}/messages", {"role": "user", "content": []}, "content"),
        (
            "/threads/{thread}/messages",
            {"role": "user", "content": [{"type": "audio"}]},
            "content[0]",
        ),
        (
            "/threads/{thread}/messages",
            {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
            "content[0].image_url.url",
        ),
        ("/threads/{thread}/messages", {"content": "x"}, "role"),
        ("/threads/{thread}/messages/{message}", {"metadata": {}, "content": "x"}, "content"),
    ],
)
def test_invalid_bodies_name_the_parameter(
    api: httpx.Client, path: str, body: dict[str, object], param: str
) -> None:
    thread = api.post("/threads", json={"messages": [{"role": "user", "content": "x"}]}).json()
    message = api.get(f"/threads/{thread['id']}/messages").json()["data"][0]
    response = api.post(path.format(thread=thread["id"], message=message["id"]), json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert param.split("[")[0].split(".")[0] in error["message"]


def test_bodies_that_are_not_json_objects(api: httpx.Client) -> None:
    for content in (b"{not json", b"[1, 2]", b'"model"', b""):
        response = api.post(
            "/assistants", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (content, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    broken = api.post("/assistants", content=b"{", headers={"Content-Type": "application/json"})
    assert "JSON" in broken.json()["error"]["message"]
    # Not an object, or a JSON object sent without saying so: the body as a whole is wrong.
    thread = api.post("/threads").json()["id"]
    for content, content_type in ((b"[1, 2]", "application/json"), (b'{"role": "user"}', None)):
        headers = {"Content-Type": content_type} if content_type else {}
        response = api.post(f"/threads/{thread}/messages", content=content, headers=headers)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] is None
        assert error["message"] == (
            "The request body must be a JSON object, sent with 'Content-Type: application/json'."
        )
    # An empty or absent body is a thread with nothing in it, as the SDK sends it.
    assert api.post("/threads").status_code == 200


def test_json_no_response_could_carry(api: httpx.Client) -> None:
    """A lone surrogate is refused before anything is stored; an integer past 64 bits
    becomes a float, as in JavaScript, and the object stays readable."""
    surrogate = b'{"model": "m", "name": "a\\ud800b"}'
    refused = api.post(
        "/assistants", content=surrogate, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400, refused.text
    assert "JSON" in refused.json()["error"]["message"]
    huge = {"type": "integer", "maximum": 2**70}
    function = {"name": "f", "parameters": {"type": "object", "properties": {"n": huge}}}
    created = api.post(
        "/assistants", json={"model": "m", "tools": [{"type": "function", "function": function}]}
    )
    assert created.status_code == 200, created.text
    stored = api.get(f"/assistants/{created.json()['id']}").json()
    maximum = stored["tools"][0]["function"]["parameters"]["properties"]["n"]["maximum"]
    assert maximum == float(2**70)
    # Nesting: a deep JSON schema is fine; past MAX_DEPTH levels, the body is refused whole.
    for depth, status in ((MAX_DEPTH - 10, 200), (MAX_DEPTH + 1, 400), (300, 400)):
        nested: dict[str, object] = {"type": "string"}
        for _ in range(depth):
            nested = {"type": "array", "items": nested}
        function = {"name": "f", "parameters": nested}
        tools = [{"type": "function", "function": function}]
        response = api.post("/assistants", json={"model": "m", "tools": tools})
        assert response.status_code == status, (depth, response.text[:200])
        if status == 400:
            assert "nested more than" in response.json()["error"]["message"]


def test_nul_characters_are_refused_on_every_database(api: httpx.Client) -> None:
    # PostgreSQL cannot store NUL; SQLite could, but the two must accept the same inputs.
    for body, param in [
        ({"model": "m", "name": "a\u0000b"}, "name"),
        ({"model": "m", "metadata": {"k\u0000": "v"}}, "metadata"),
        (
            {
                "model": "m",
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"enum": ["\u0000"]}},
                    }
                ],
            },
            "tools[0].function.parameters",
        ),
    ]:
        response = api.post("/assistants", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param
    for path in ("/assistants/asst_%00", "/threads/thread_%00/messages?after=msg_%00"):
        assert api.get(path).status_code in (400, 404)


def test_sdk_rejects_unknown_fields(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as extra:
        openai_client.beta.assistants.create(model="m", extra_body={"colour": "blue"})
    assert _param(extra) == "colour"
    assert "colour" in extra.value.message


def test_unknown_ids_are_404(openai_client: openai.OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    calls = [
        lambda: openai_client.beta.assistants.retrieve("asst_missing"),
        lambda: openai_client.beta.assistants.update("asst_missing", name="x"),
        lambda: openai_client.beta.assistants.delete("asst_missing"),
        lambda: openai_client.beta.threads.retrieve("thread_missing"),
        lambda: openai_client.beta.threads.update("thread_missing", metadata={}),
        lambda: openai_client.beta.threads.delete("thread_missing"),
        lambda: openai_client.beta.threads.messages.create(
            "thread_missing", role="user", content="x"
        ),
        lambda: openai_client.beta.threads.messages.list("thread_missing"),
        lambda: openai_client.beta.threads.messages.retrieve("msg_missing", thread_id=thread.id),
        lambda: openai_client.beta.threads.messages.update(
            "msg_missing", thread_id=thread.id, metadata={}
        ),
        lambda: openai_client.beta.threads.messages.delete("msg_missing", thread_id=thread.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        body = missing.value.body
        assert body["code"] == "not_found" and "missing" in body["message"]  # type: ignore[index]


def test_api_key_is_required(assistants_service: ServiceProcess) -> None:
    url = f"{assistants_service.base_url}/v1/assistants"
    accepted = [
        {"X-API-Key": "test-key"},
        {"Authorization": "Bearer test-key"},
        {"Authorization": "bearer test-key"},
    ]
    for headers in accepted:
        assert httpx.get(url, headers=headers).status_code == 200, headers
    refused = [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "wrong"},
        {"X-API-Key": "test-key-longer"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dGVzdC1rZXk6"},
        {"Authorization": "test-key"},
        {"X-API-Key": "wrong", "Authorization": "Bearer test-key"},
    ]
    for headers in refused:
        response = httpx.post(url, headers=headers, json={"model": "m"})
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"]["type"] == "invalid_request_error"
    for key in ("wrong", ""):
        client = openai.OpenAI(base_url=f"{assistants_service.base_url}/v1", api_key=key or "x")
        with pytest.raises(openai.AuthenticationError):
            client.with_options(max_retries=0).beta.threads.create()
    assert httpx.get(f"{assistants_service.base_url}/health").status_code == 200
