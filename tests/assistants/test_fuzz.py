"""Property tests: schemathesis drives every operation in our own /openapi.json; no input is a 5xx.

Each response must also match the response schema and content type the same document
declares. Inputs come valid (positive) and schema-violating (negative), and every negative
one must be refused with a 4xx. The limits are probed at their edges: sizes (strings,
lists, metadata pairs) one or two either side of OpenAI's limits, JSON values of the wrong
type for numbers, and bodies around the size limit, refused exactly past it.
FUZZ_EXAMPLES sets the examples per operation (default kept small for CI).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
HEADERS = {"Authorization": "Bearer test-key"}
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _fuzz_every_operation(
    service: ServiceProcess, mode: GenerationMode, checks: list, with_body_only: bool = False
) -> None:
    # Driven by hand rather than through schemathesis' pytest plugin, whose lazy fixture
    # loader does not work with the pytest in use; the checks are the same.
    schema = schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    if with_body_only:
        operations = [op for op in operations if op.body]
        assert len(operations) >= 8, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @FUZZ_SETTINGS
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=service.base_url, headers=HEADERS, timeout=30, checks=checks
            )

        try:
            fuzz()
        except Exception as exc:  # report every failing operation, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in service.log()


def test_no_input_is_a_server_error(assistants_service: ServiceProcess) -> None:
    _fuzz_every_operation(assistants_service, GenerationMode.POSITIVE, CHECKS)


def test_every_schema_violation_is_refused(assistants_service: ServiceProcess) -> None:
    _fuzz_every_operation(
        assistants_service, GenerationMode.NEGATIVE, NEGATIVE_CHECKS, with_body_only=True
    )


TOOL = {"type": "function", "function": {"name": "f"}}
# (path, body without the field, field, smallest and largest size taken); a size is a
# string's length, a list's items or a mapping's pairs. Runs are made thread-and-run, so
# no thread ever has an active run to refuse them for.
SIZED_FIELDS = [
    ("/assistants", {"model": "m"}, "name", 0, 256),
    ("/assistants", {"model": "m"}, "description", 0, 512),
    ("/assistants", {"model": "m"}, "instructions", 0, 256_000),
    ("/assistants", {"model": "m"}, "tools", 0, 128),
    ("/assistants", {"model": "m"}, "metadata", 0, 16),
    ("/threads/runs", {}, "instructions", 0, 256_000),
    ("/threads/runs", {}, "tools", 0, 20),
    ("/threads/runs", {}, "metadata", 0, 16),
    ("/threads", {}, "messages", 0, 32),
    ("{messages}", {"role": "user"}, "content", 1, 256_000),
]
NUMBERS = [
    ("/assistants", {"model": "m"}, "temperature"),
    ("/assistants", {"model": "m"}, "top_p"),
    ("/threads/runs", {}, "temperature"),
    ("/threads/runs", {}, "top_p"),
    ("/threads/runs", {}, "max_prompt_tokens"),
    ("/threads/runs", {}, "max_completion_tokens"),
]


def _sized(field: str, size: int) -> object:
    if field == "tools":
        return [TOOL] * size
    if field == "metadata":
        return {f"k{i}": "v" for i in range(size)}
    if field == "messages":
        return [{"role": "user", "content": "m"}] * size
    return "x" * size


def test_limits_and_types_hold_at_their_edges(assistants_service: ServiceProcess) -> None:
    base = assistants_service.base_url
    with httpx.Client(base_url=f"{base}/v1", headers=HEADERS, timeout=30) as client:
        assistant = client.post("/assistants", json={"model": "m", "instructions": "i"}).json()
        thread = client.post("/threads", json={}).json()["id"]

        def post(path: str, body: dict) -> httpx.Response:
            if path == "/threads/runs":
                body = {"assistant_id": assistant["id"], **body}
            return client.post(path.replace("{messages}", f"/threads/{thread}/messages"), json=body)

        @given(
            case=st.sampled_from(SIZED_FIELDS),
            offset=st.integers(-2, 2),
            small=st.integers(0, 3),
            at_edge=st.booleans(),
        )
        @FUZZ_SETTINGS
        def sized(case: tuple, offset: int, small: int, at_edge: bool) -> None:
            path, body, field, lowest, highest = case
            size = highest + offset if at_edge else small
            response = post(path, {**body, field: _sized(field, size)})
            if lowest <= size <= highest:
                assert response.status_code == 200, (field, size, response.text)
            else:
                assert response.status_code == 400, (field, size, response.text)
                assert response.json()["error"]["param"] == field

        @given(
            case=st.sampled_from(NUMBERS),
            value=st.booleans() | st.text(max_size=5) | st.lists(st.integers(0, 1), max_size=2),
        )
        @FUZZ_SETTINGS
        def typed(case: tuple, value: object) -> None:
            path, body, field = case
            response = post(path, {**body, field: value})
            assert response.status_code == 400, (field, value, response.text)
            assert response.json()["error"]["param"] == field

        sized()
        typed()
    assert "Traceback" not in assistants_service.log()


SMALL_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def small_limit_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("small-limit")
    env = {"MAX_BODY_BYTES": str(SMALL_LIMIT)}
    with run_assistants(sqlite_url(folder), folder / "assistants.log", env=env) as running:
        yield running


def test_bodies_around_the_limit(small_limit_service: ServiceProcess) -> None:
    base = small_limit_service.base_url
    with httpx.Client(base_url=f"{base}/v1", headers=HEADERS, timeout=30) as client:
        thread = client.post("/threads", json={}).json()["id"]

        @given(
            size=st.integers(SMALL_LIMIT - 64, SMALL_LIMIT + 64) | st.integers(0, 4 * SMALL_LIMIT),
            chunked=st.booleans(),
        )
        @FUZZ_SETTINGS
        def post_of_size(size: int, chunked: bool) -> None:
            empty = json.dumps({"role": "user", "content": ""}).encode()
            # Pad the content so the body is exactly ``size`` bytes (when it can be).
            padding = max(size - len(empty), 1)
            body = json.dumps({"role": "user", "content": "x" * padding}).encode()
            content = iter([body]) if chunked else body
            response = client.post(
                f"/threads/{thread}/messages",
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code < 500, response.text
            error = response.json().get("error")
            if len(body) > SMALL_LIMIT:
                assert response.status_code == 413 and error["code"] == "request_too_large"
            elif padding > 256_000:
                assert response.status_code == 400 and error["param"] == "content"
            else:
                assert response.status_code == 200, response.text

        post_of_size()
    assert "Traceback" not in small_limit_service.log()
