"""Where no sandbox can be made, code_interpreter is refused with the reason; code runs
unsandboxed only with the explicit development setting, which warns on every execution."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.runs.conftest import BASE_ENV
from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

SCRIPT: list[dict[str, Any]] = [{"match": "plain", "text": "No tools needed.", "repeat": True}]
NO_BWRAP = {"CODE_INTERPRETER_BWRAP": "/nonexistent/bwrap"}
CODE = "Run it:\n```python\nprint(6 * 7)\n```"


@pytest.fixture(scope="module")
def unsandboxed_service(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    # A database of its own: a service sharing one would claim (and refuse) its runs.
    database_url = sqlite_url(tmp_path_factory.mktemp("unsandboxed"))
    env = {
        **BASE_ENV,
        **NO_BWRAP,
        "CODE_INTERPRETER_ALLOW_UNSANDBOXED": "true",
        "SOVEREIGN_PLAYGROUND_URL": upstream.url,
    }
    log = tmp_path_factory.mktemp("logs") / "assistants.log"
    with run_assistants(database_url, log, env=env) as service:
        yield service


SERVICE_ENV = NO_BWRAP


def test_the_run_fails_naming_what_is_missing(client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(
        model="fake-model", tools=[{"type": "code_interpreter"}]
    )
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": CODE}]}
    )
    assert run.status == "failed"
    assert run.last_error is not None
    assert run.last_error.code == "server_error"
    assert "code_interpreter is unavailable" in run.last_error.message
    assert "bubblewrap" in run.last_error.message
    assert "/nonexistent/bwrap" in run.last_error.message
    # Runs without the tool are not affected.
    plain = client.beta.assistants.create(model="fake-model")
    ok = client.beta.threads.create_and_run_poll(
        assistant_id=plain.id, thread={"messages": [{"role": "user", "content": "plain"}]}
    )
    assert ok.status == "completed"


def test_a_response_fails_naming_what_is_missing(client: openai.OpenAI) -> None:
    tool = {"type": "code_interpreter", "container": {"type": "auto"}}
    response = client.responses.create(model="fake-model", input=CODE, tools=[tool])
    assert response.status == "failed"
    assert response.error is not None and response.error.code == "server_error"
    assert "code_interpreter is unavailable" in response.error.message
    assert "/nonexistent/bwrap" in response.error.message


def test_development_setting_runs_code_with_a_warning_each_time(
    unsandboxed_service: ServiceProcess,
) -> None:
    client = openai.OpenAI(
        base_url=f"{unsandboxed_service.base_url}/v1", api_key="test-key", max_retries=0
    )
    assistant = client.beta.assistants.create(
        model="fake-model", tools=[{"type": "code_interpreter"}]
    )
    for _ in range(2):
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": CODE}]}
        )
        assert run.status == "completed", run.last_error
        reply = client.beta.threads.messages.list(run.thread_id, limit=1).data[0]
        assert reply.content[0].text.value == "Output: 42"
    log = unsandboxed_service.log()
    assert log.count("running code WITHOUT a sandbox") == 2
    client.close()
