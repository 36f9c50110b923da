"""The repo's stack over a scripted Ollama that goes away: the stack sees it within seconds,
fails over to the embedded-like runtime (sovereign restarted with the new URL, assistants left
alone, a run queued meanwhile not lost), and `stack restart runtime` goes back to Ollama."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest
import yaml

from tests.support.processes import free_port, wait_http

if TYPE_CHECKING:
    from conftest import StackHarness

ROOT = Path(__file__).resolve().parents[2]
MODEL = "qwen2.5-coder:7b"
FROM_OLLAMA = "Hello from Ollama."
FROM_EMBEDDED = "Hello from the embedded runtime."

pytestmark = pytest.mark.timeout(240)


def repo_stack_over_fakes(
    harness: StackHarness, tmp_path: Path, oport: int, real_embedded: bool = False
) -> None:
    """The repo's stack.yaml as it is, but with every port free, the Ollama variant on
    `oport`, and (unless real_embedded) the embedded variant's command replaced by a scripted
    OpenAI-compatible runtime (the real model is slow on a shared CPU; one test uses it)."""
    cfg = yaml.safe_load((ROOT / "stack.yaml").read_text())
    script = tmp_path / "embedded.json"
    script.write_text(json.dumps({"responses": [{"text": FROM_EMBEDDED, "repeat": True}]}))
    variants = {v["name"]: v for v in cfg["services"]["runtime"]["variants"]}
    variants["ollama"]["port"] = oport
    embedded = variants["embedded"]
    embedded["port"] = free_port()
    if not real_embedded:
        embedded["command"] = (
            "${stack.python} -m tests.fakes.openai_upstream --fd ${self.fd} --script " + str(script)
        )
        embedded["env"] = {"PYTHONPATH": str(ROOT)}
    for name in ("sovereign", "assistants"):
        cfg["services"][name]["port"] = free_port()
        cfg["services"][name]["cwd"] = str(ROOT)
    harness.file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    harness.env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'assistants.db'}",
        API_KEY="failover-key",
        OLLAMA_MODEL=MODEL,
        # nothing on PATH is called ollama: only the one answering on the port is adopted
        PATH=os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p)
        + os.pathsep
        + str(tmp_path / "no-ollama"),
    )
    harness.env.pop("STACK_RUNTIME_URL", None)
    if subprocess.run(["which", "ollama"], capture_output=True).returncode == 0:
        pytest.skip("ollama is installed here: the stack would start it instead of failing over")


@contextlib.contextmanager
def scripted_ollama(port: int, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    script = tmp_path / "ollama.json"
    script.write_text(
        json.dumps({"models": [MODEL], "responses": [{"text": FROM_OLLAMA, "repeat": True}]})
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.ollama_upstream",
            "--port",
            str(port),
            "--script",
            str(script),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/tags", proc=proc)
        yield proc
    finally:
        proc.kill()
        proc.wait()


class Desk:
    """One assistant; each ask() is a new thread and run, waited for until it ends."""

    def __init__(self, harness: StackHarness) -> None:
        url = harness.status()["services"]["assistants"]["url"]
        self.client = httpx.Client(
            base_url=f"{url}/v1", headers={"Authorization": "Bearer failover-key"}, timeout=60
        )
        body = {"model": MODEL, "name": "failover", "instructions": "Be brief."}
        self.assistant = self.client.post("/assistants", json=body).json()["id"]

    def start(self) -> tuple[str, str]:
        thread = self.client.post("/threads", json={}).json()["id"]
        msg = {"role": "user", "content": "Say hello."}
        assert self.client.post(f"/threads/{thread}/messages", json=msg).status_code == 200
        run = self.client.post(f"/threads/{thread}/runs", json={"assistant_id": self.assistant})
        assert run.status_code == 200, run.text
        return thread, run.json()["id"]

    def finish(self, thread: str, run_id: str) -> str:
        deadline = time.monotonic() + 120
        run: dict[str, Any] = {"status": "queued"}
        while run["status"] in ("queued", "in_progress") and time.monotonic() < deadline:
            time.sleep(0.2)
            run = self.client.get(f"/threads/{thread}/runs/{run_id}").json()
        assert run["status"] == "completed", (run["status"], run.get("last_error"))
        msgs = self.client.get(f"/threads/{thread}/messages", params={"order": "desc"}).json()
        return str(msgs["data"][0]["content"][0]["text"]["value"])

    def ask(self) -> str:
        return self.finish(*self.start())


def test_ollama_goes_away_the_stack_fails_over_and_comes_back(
    harness: StackHarness, tmp_path: Path
) -> None:
    oport = free_port()
    repo_stack_over_fakes(harness, tmp_path, oport)
    with scripted_ollama(oport, tmp_path) as ollama:
        out = harness.cli("up", timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "runtime: ollama (already running, adopted)" in out.stdout
        st = harness.status()["services"]
        assert st["runtime"]["state"] == "adopted"
        assistants_pid, sovereign_pid = st["assistants"]["pid"], st["sovereign"]["pid"]
        desk = Desk(harness)
        assert desk.ask() == FROM_OLLAMA

        ollama.kill()  # Ollama quits
        gone = time.monotonic()

        def noticed() -> dict[str, Any] | None:
            rt = harness.status()["services"]["runtime"]
            return rt if rt["health"] != "healthy" or rt["state"] != "adopted" else None

        rt = harness.wait_for(noticed, timeout=10, what="the runtime to be seen gone")
        assert time.monotonic() - gone < 5, rt
        # a run created while the stack fails over waits for the new runtime, not lost
        harness.wait_for(
            lambda: harness.status()["services"]["sovereign"]["state"] != "healthy",
            timeout=10,
            what="sovereign to be restarted",
        )
        queued = desk.start()

        def on_embedded() -> dict[str, Any] | None:
            st = harness.status()
            svcs = st["services"]
            ready = svcs["runtime"]["variant"] == "embedded" and all(
                s["state"] == "healthy" for s in svcs.values()
            )
            return st if ready else None

        st = harness.wait_for(on_embedded, timeout=60, what="the failover to embedded")
        svcs = st["services"]
        assert svcs["assistants"]["pid"] == assistants_pid  # untouched
        assert svcs["assistants"]["restarts"] == 0
        assert svcs["sovereign"]["pid"] != sovereign_pid
        assert any("failed over from ollama to embedded" in n for n in st["notes"]), st["notes"]
        logs = harness.cli("logs", "sovereign", "-n", "200").stdout
        assert "[stack] started pid" in logs.split("exited with code")[-1]
        assert desk.finish(*queued) == FROM_EMBEDDED
        assert desk.ask() == FROM_EMBEDDED  # a run created after the failover
        embedded_pid = svcs["runtime"]["pid"]
        sovereign_pid = svcs["sovereign"]["pid"]

    with scripted_ollama(oport, tmp_path):  # Ollama is back
        out = harness.cli("restart", "runtime", timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "runtime restarted as ollama" in out.stdout
        st = harness.status()
        svcs = st["services"]
        assert svcs["runtime"]["variant"] == "ollama" and svcs["runtime"]["state"] == "adopted"
        assert not psutil.pid_exists(embedded_pid) or (
            psutil.Process(embedded_pid).status() == psutil.STATUS_ZOMBIE
        )
        assert svcs["sovereign"]["pid"] != sovereign_pid
        assert svcs["assistants"]["pid"] == assistants_pid
        assert desk.ask() == FROM_OLLAMA
        assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()


@pytest.mark.timeout(420)
def test_failover_to_the_real_embedded_runtime(harness: StackHarness, tmp_path: Path) -> None:
    """The same failover, onto the real embedded llama.cpp runtime and its bundled model."""
    for module in ("llama_cpp", "services.sovereign.embedded"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            pytest.skip(f"{module} is not importable: the embedded runtime is not installed")
    oport = free_port()
    repo_stack_over_fakes(harness, tmp_path, oport, real_embedded=True)
    with scripted_ollama(oport, tmp_path) as ollama:
        out = harness.cli("up", timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assistants_pid = harness.status()["services"]["assistants"]["pid"]
        desk = Desk(harness)
        assert desk.ask() == FROM_OLLAMA
        ollama.kill()

        def on_embedded() -> dict[str, Any] | None:
            svcs = harness.status()["services"]
            ready = svcs["runtime"]["variant"] == "embedded" and all(
                s["state"] == "healthy" for s in svcs.values()
            )
            return svcs if ready else None

        svcs = harness.wait_for(on_embedded, timeout=300, what="the real embedded runtime")
        assert svcs["assistants"]["pid"] == assistants_pid
        reply = desk.ask()  # answered by the bundled model: some text, not Ollama's
        assert reply.strip() and reply != FROM_OLLAMA
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()
