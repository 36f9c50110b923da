"""Restarts that follow dependencies, with real processes: a service that comes back on
another port or variant restarts its dependents with the new URL; `--no-deps` skips them;
what does not depend on the change is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.processes import free_port, wait_http

if TYPE_CHECKING:
    from conftest import StackHarness

pytestmark = pytest.mark.timeout(120)

FAST = "interval: 0.05, timeout: 1"
SVC = Path(__file__).parent / "svc.py"


def _said(harness: StackHarness, name: str) -> list[str]:
    """What each start of `name` was given (svc.py prints `NAME starting SAY`)."""
    logs = harness.cli("logs", name, "-n", "500").stdout
    return [line.split(" starting ", 1)[1] for line in logs.splitlines() if " starting " in line]


def _all_healthy(harness: StackHarness) -> dict[str, Any] | None:
    st = harness.status()
    ok = all(s["state"] in ("healthy", "adopted") for s in st["services"].values())
    return st if ok else None


def test_a_service_back_on_another_port_restarts_its_dependents(
    harness: StackHarness, tmp_path: Path
) -> None:
    db_port, crash = free_port(), tmp_path / "crash"
    harness.write(f"""
services:
  db:
    command: {{py}} {{svc}} --port ${{self.port}} --crash-when {crash}
    env: {{SVC_NAME: db}}
    port: {db_port}
    probe: {{http: /health, {FAST}}}
    restart: {{policy: on-failure, backoff: 5}}
  api:
    command: {{py}} {{svc}} --fd ${{self.fd}} --say db=${{services.db.url}}
    env: {{SVC_NAME: api}}
    port: {free_port()}
    socket: inherit
    probe: {{http: /health, {FAST}}}
    depends_on: {{db: {{condition: healthy}}}}
  ui:
    command: {{py}} {{svc}} --fd ${{self.fd}} --say api=${{services.api.url}}
    env: {{SVC_NAME: ui}}
    port: {free_port()}
    socket: inherit
    probe: {{http: /health, {FAST}}}
    depends_on: {{api: {{condition: healthy}}}}
""")
    assert harness.cli("up").returncode == 0
    before = harness.status()["services"]
    crash.touch()
    harness.wait_for(
        lambda: harness.status()["services"]["db"]["state"] == "backoff", what="db to crash"
    )
    # while db waits to restart, someone else takes its port
    squatter = subprocess.Popen(
        [sys.executable, str(SVC), "--port", str(db_port)], stdout=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{db_port}/health", proc=squatter)
        st = harness.wait_for(
            lambda: (s := _all_healthy(harness)) and s["services"]["db"]["port"] != db_port and s,
            timeout=40,
            what="db to come back on another port",
        )
        svcs = st["services"]
        new_url = svcs["db"]["url"]
        assert svcs["db"]["asked_port"] == db_port and svcs["db"]["moved"]
        assert svcs["db"]["port_holder"]["pid"] == squatter.pid
        assert svcs["api"]["pid"] != before["api"]["pid"]  # restarted with the new URL
        assert _said(harness, "api") == [f"db={before['db']['url']}", f"db={new_url}"]
        assert svcs["ui"]["pid"] == before["ui"]["pid"]  # api's URL did not change
        assert any(f"db: now on port {svcs['db']['port']}" in n for n in st["notes"])
        assert any("restarting api with the new URL" in n for n in st["notes"])
        # a restart that changes nothing for the others restarts only the service
        out = harness.cli("restart", "api")
        assert out.returncode == 0, out.stdout + out.stderr
        after = harness.status()["services"]
        assert after["ui"]["pid"] == before["ui"]["pid"] and after["db"]["pid"] == svcs["db"]["pid"]
        assert harness.cli("down").returncode == 0
    finally:
        squatter.kill()
        squatter.wait()
    harness.assert_nothing_left()


VARIANTS = """
services:
  runtime:
    variants:
      - name: outside
        when: {{installed: no-such-program-here}}
        adopt: true
        command: {{py}} {{svc}} --port ${{self.port}}
        port: {outside}
        probe: {{http: /health, {fast}, liveness_interval: 0.2, failure_threshold: 2}}
      - name: own
        command: {{py}} {{svc}} --fd ${{self.fd}}
        env: {{SVC_NAME: own}}
        port: {own}
        socket: inherit
        probe: {{http: /health, {fast}}}
  api:
    command: {{py}} {{svc}} --fd ${{self.fd}} --say upstream=${{services.runtime.url}}
    env: {{SVC_NAME: api}}
    port: {api}
    socket: inherit
    probe: {{http: /health, {fast}}}
    depends_on: {{runtime: {{condition: healthy}}}}
"""


def _outside(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(SVC), "--port", str(port)])
    wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
    return proc


def test_failover_and_restart_back_with_and_without_deps(harness: StackHarness) -> None:
    outside_port, own_port = free_port(), free_port()
    outside_url, own_url = f"http://127.0.0.1:{outside_port}", f"http://127.0.0.1:{own_port}"
    harness.write(VARIANTS.format(outside=outside_port, own=own_port, api=free_port(), fast=FAST))
    outside = _outside(outside_port)
    try:
        assert harness.cli("up").returncode == 0
        assert harness.status()["services"]["runtime"]["state"] == "adopted"
        outside.kill()
        outside.wait()
        st = harness.wait_for(
            lambda: (
                (s := _all_healthy(harness)) and s["services"]["runtime"]["variant"] == "own" and s
            ),
            what="the failover to the own runtime",
        )
        assert st["services"]["runtime"]["pid"]
        assert _said(harness, "api") == [f"upstream={outside_url}", f"upstream={own_url}"]
        api_pid = st["services"]["api"]["pid"]

        outside = _outside(outside_port)  # the preferred one answers again
        harness.wait_for(
            lambda: any(
                "runtime: outside answers again; `stack restart runtime` switches back" in n
                for n in harness.status()["notes"]
            ),
            what="the note that the preferred runtime is back",
        )
        out = harness.cli("restart", "runtime", "--no-deps")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "runtime restarted as outside (adopted)" in out.stdout
        assert "not restarting api (--no-deps)" in out.stdout
        st = harness.status()
        assert st["services"]["api"]["pid"] == api_pid  # left alone, still on the old URL
        assert len(_said(harness, "api")) == 2

        out = harness.cli("restart", "runtime")  # now it must follow
        assert out.returncode == 0, out.stdout + out.stderr
        st = harness.status()["services"]
        assert st["runtime"]["state"] == "adopted" and st["api"]["pid"] != api_pid
        assert _said(harness, "api")[-1] == f"upstream={outside_url}"
        assert harness.cli("down").returncode == 0
        assert outside.poll() is None  # adopted: not ours to stop
    finally:
        outside.kill()
        outside.wait()
    harness.assert_nothing_left()
