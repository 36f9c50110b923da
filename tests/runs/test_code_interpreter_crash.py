"""A service that dies takes its sandboxes with it: no session outlives the process."""

from __future__ import annotations

from typing import Any

import openai
import psutil
import pytest

from tests.fakes.process import FakeUpstream
from tests.runs.conftest import BASE_ENV
from tests.support.databases import sqlite_url
from tests.support.processes import run_assistants, wait_until

SCRIPT: list[dict[str, Any]] = []


def test_killed_service_leaves_no_sandbox_behind(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> None:
    if "postgresql" in database_url:
        pytest.skip("the sandbox does not depend on the database; SQLite is enough")
    env = {**BASE_ENV, "SOVEREIGN_PLAYGROUND_URL": upstream.url}
    log = tmp_path_factory.mktemp("logs") / "assistants.log"
    with run_assistants(sqlite_url(tmp_path_factory.mktemp("db")), log, env=env) as service:
        client = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="test-key")
        assistant = client.beta.assistants.create(
            model="fake-model", tools=[{"type": "code_interpreter"}]
        )
        code = "Run:\n```python\nimport subprocess\nsubprocess.Popen(['sleep', '600'])\n```"
        run = client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": code}]}
        )
        assert run.status == "completed", run.last_error
        client.close()
        sandbox = psutil.Process(service.proc.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in sandbox]
        assert any("sleep 600" in c for c in commands), commands
        service.kill()
        wait_until(lambda: not any(p.is_running() and p.status() != "zombie" for p in sandbox))
