"""End to end with the repo's stack.yaml: `stack up` on a fresh data directory, the seed's
scenario through the assistants URL from `stack status --json`, then `stack down`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.processes import free_port, wait_http

if TYPE_CHECKING:
    from conftest import StackHarness

ROOT = Path(__file__).resolve().parents[2]
TRADING_DESK = {"CEO", "Strategy Wizard", "Day Trader", "Wayne"}


def needs(*modules: str) -> None:
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            pytest.skip(f"{module} is not importable yet: the end-to-end stack needs it")


def repo_stack(harness: StackHarness, tmp_path: Path, **env: str) -> StackHarness:
    harness.file = ROOT / "stack.yaml"
    harness.env.update(
        STACK_STATE_DIR=str(tmp_path / "state"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'assistants.db'}",
        API_KEY="e2e-key",
        **env,
    )
    for var in ("STACK_RUNTIME_URL", "OLLAMA_MODEL"):
        if var not in env:
            harness.env.pop(var, None)
    return harness


def scenario(harness: StackHarness) -> tuple[str, list[str]]:
    """Create an assistant, a thread, a message and a run; wait for the run; read the reply."""
    import httpx

    status = harness.status()
    url = status["services"]["assistants"]["url"]
    headers = {"Authorization": "Bearer e2e-key"}
    with httpx.Client(base_url=f"{url}/v1", headers=headers, timeout=60) as c:
        listed = c.get("/assistants", params={"limit": 100}).json()["data"]
        names = [a["name"] for a in listed]
        # the provisioned CEO carries the model the stack chose for this runtime
        model = next(a["model"] for a in listed if a["name"] == "CEO")
        a = c.post("/assistants", json={"model": model, "name": "e2e", "instructions": "Be brief."})
        assert a.status_code == 200, a.text
        t = c.post("/threads", json={}).json()
        m = c.post(f"/threads/{t['id']}/messages", json={"role": "user", "content": "Say hello."})
        assert m.status_code == 200, m.text
        run = c.post(f"/threads/{t['id']}/runs", json={"assistant_id": a.json()["id"]}).json()
        deadline = time.monotonic() + 120
        while run["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.2)
            run = c.get(f"/threads/{t['id']}/runs/{run['id']}").json()
        assert run["status"] == "completed", (run["status"], run.get("last_error"))
        msgs = c.get(f"/threads/{t['id']}/messages", params={"order": "desc"}).json()["data"]
    reply = msgs[0]
    assert reply["role"] == "assistant"
    return reply["content"][0]["text"]["value"], names


@pytest.mark.timeout(180)
def test_repo_stack_with_a_scripted_upstream(harness: StackHarness, tmp_path: Path) -> None:
    """The real assistants and sovereign services over a scripted OpenAI-compatible upstream."""
    needs("services.assistants.app", "services.sovereign.app")
    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "fake_openai.py"), str(port)],
        stdout=subprocess.DEVNULL,
    )
    try:
        repo_stack(
            harness,
            tmp_path,
            STACK_RUNTIME_URL=f"http://127.0.0.1:{port}/v1",
            STACK_RUNTIME_MODEL="scripted-model",
        )
        wait_http(f"http://127.0.0.1:{port}/", proc=upstream)
        out = harness.cli("up", timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "runtime: external" in out.stdout
        reply, names = scenario(harness)
        assert reply == "Scripted reply from the desk."
        assert set(names) >= TRADING_DESK
        assert harness.cli("down").returncode == 0
        harness.assert_nothing_left()
        # provisioning is idempotent by name: a second up creates nothing new
        assert harness.cli("up", timeout=120).returncode == 0
        _, names = scenario(harness)
        assert sorted(n for n in names if n in TRADING_DESK) == sorted(TRADING_DESK)
        assert harness.cli("down").returncode == 0
        harness.assert_nothing_left()
    finally:
        upstream.kill()
        upstream.wait()


@pytest.mark.timeout(300)
def test_repo_stack_with_the_embedded_runtime(harness: StackHarness, tmp_path: Path) -> None:
    """What a user without Ollama gets: the embedded llama.cpp runtime and its small model."""
    needs(
        "services.assistants.app",
        "services.sovereign.app",
        "services.sovereign.embedded",
        "llama_cpp",
    )
    if subprocess.run(["which", "ollama"], capture_output=True).returncode == 0:
        pytest.skip("ollama is installed here: the stack would use it, not the embedded runtime")
    repo_stack(harness, tmp_path)
    out = harness.cli("up", timeout=280)
    if out.returncode != 0 and "bundled model" in out.stdout:
        pytest.skip("the embedded model is not available offline: " + out.stdout[-300:])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "runtime: embedded - the embedded llama.cpp runtime" in out.stdout
    assert "Ollama is not available" in out.stdout
    reply, names = scenario(harness)
    assert reply.strip()
    assert set(names) >= TRADING_DESK
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()
