"""kill -9 of the service mid-run, then restarts: no run stays in_progress, nothing written is
lost, a dead worker's run is executed once more and then given up; requires_action runs
still expire after restarts. SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.fakes.process import FakeUpstream
from tests.runs.conftest import BASE_ENV, WEATHER_TOOL
from tests.support.processes import (
    Launch,
    relaunching,
    wait_until,
)

SLOW = {"chunks": 40, "tokens_per_s": 8}
SCRIPT = [
    {"match": "before", "text": "Written before the crash."},
    {"match": "retried", "text": "x " * 40, **SLOW},
    {"match": "retried", "text": "Recovered answer."},
    {"match": "doomed", "text": "y " * 40, **SLOW},
    {"match": "doomed", "text": "z " * 40, **SLOW},
    {"match": "waiting", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Bern"}}]},
]


@pytest.fixture
def launch(database_url: str, upstream: FakeUpstream, tmp_path: Path) -> Iterator[Launch]:
    """Start the service (again) against the module's database; every process is stopped."""
    env = {**BASE_ENV, "SOVEREIGN_PLAYGROUND_URL": upstream.url}
    with relaunching(database_url, tmp_path, env) as start:
        yield start


def writing(sdk: openai.OpenAI, thread_id: str) -> bool:
    messages = sdk.beta.threads.messages.list(thread_id).data
    return any(m.role == "assistant" and m.status == "in_progress" for m in messages)


def assert_steps_name_existing_messages(sdk: openai.OpenAI, thread_id: str, run_id: str) -> None:
    message_ids = {m.id for m in sdk.beta.threads.messages.list(thread_id, limit=100).data}
    for step in sdk.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id).data:
        if step.step_details.type == "message_creation":
            assert step.step_details.message_creation.message_id in message_ids, step


def test_kill_mid_run_then_restart_recovers_every_run(
    launch: Launch, upstream: FakeUpstream
) -> None:
    service, sdk = launch()
    assistant = sdk.beta.assistants.create(model="fake-model")
    first = sdk.beta.threads.create(messages=[{"role": "user", "content": "before"}])
    done = sdk.beta.threads.runs.create_and_poll(
        thread_id=first.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert done.status == "completed"
    sdk.beta.threads.messages.create(first.id, role="user", content="retried please")
    retried = sdk.beta.threads.runs.create(thread_id=first.id, assistant_id=assistant.id)
    second = sdk.beta.threads.create(messages=[{"role": "user", "content": "doomed run"}])
    doomed = sdk.beta.threads.runs.create(thread_id=second.id, assistant_id=assistant.id)
    # Both runs are mid-answer: the upstream was asked and the reply message exists.
    wait_until(
        lambda: (
            upstream.asked("retried") == 1
            and upstream.asked("doomed") == 1
            and writing(sdk, first.id)
            and writing(sdk, second.id)
        )
    )
    service.kill()

    # Second life: both leases lapse; both runs are executed again.
    service, sdk = launch()
    run = sdk.beta.threads.runs.poll(retried.id, thread_id=first.id, poll_interval_ms=100)
    assert run.status == "completed", run.last_error
    messages = sdk.beta.threads.messages.list(first.id, order="asc").data
    summary = [(m.role, m.status, m.content[0].text.value if m.content else "") for m in messages]
    # The dead attempt's empty reply is gone: the retried run left exactly one message.
    assert summary == [
        ("user", "completed", "before"),
        ("assistant", "completed", "Written before the crash."),
        ("user", "completed", "retried please"),
        ("assistant", "completed", "Recovered answer."),
    ]
    assert [m.id for m in messages if m.run_id == retried.id] == [messages[3].id]
    assert_steps_name_existing_messages(sdk, first.id, retried.id)
    assert upstream.asked("retried") == 2
    wait_until(lambda: upstream.asked("doomed") == 2)
    wait_until(lambda: writing(sdk, second.id))
    service.kill()

    # Third life: the doomed run died on its second attempt too, so it is given up.
    service, sdk = launch()
    run = sdk.beta.threads.runs.poll(doomed.id, thread_id=second.id, poll_interval_ms=100)
    assert run.status == "failed"
    assert run.last_error.code == "server_error"
    assert "stopped" in run.last_error.message and "2 times" in run.last_error.message
    # Neither dead attempt wrote a word: no empty replies are left behind either.
    left = sdk.beta.threads.messages.list(second.id, order="asc").data
    assert [(m.role, m.status) for m in left] == [("user", "completed")]
    assert_steps_name_existing_messages(sdk, second.id, doomed.id)
    for thread in (first, second):
        for r in sdk.beta.threads.runs.list(thread.id):
            assert r.status in ("completed", "failed")


def test_requires_action_expires_after_a_restart(
    launch: Launch,
) -> None:
    service, sdk = launch(RUN_EXPIRY_SECONDS="2")
    assistant = sdk.beta.assistants.create(model="fake-model", tools=[WEATHER_TOOL])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "waiting game"}])
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert run.expires_at - run.created_at == 2
    service.kill()
    time.sleep(2.5)
    service, sdk = launch(RUN_EXPIRY_SECONDS="2")
    # runs.poll would return at once: requires_action is terminal to it.
    run = wait_until(
        lambda: (
            (r := sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id)).status == "expired"
            and r
        ),
        timeout=10,
    )
    step = sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
    assert step.status == "expired" and step.expired_at
    call_id = step.step_details.tool_calls[0].id
    with pytest.raises(openai.BadRequestError):
        sdk.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call_id}]
        )
    sdk.beta.threads.messages.create(thread.id, role="user", content="the thread is free again")
