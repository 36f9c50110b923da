"""`stack` against real child processes from throwaway stack files of tiny Python services."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from tests.support.processes import free_port, wait_http

if TYPE_CHECKING:
    from conftest import StackHarness


pytestmark = pytest.mark.timeout(90)

FAST = "interval: 0.05, timeout: 1"


def test_up_in_order_status_logs_restart_down(harness: StackHarness) -> None:
    p1, p2 = free_port(), free_port()
    harness.write(f"""
services:
  db:
    command: {{py}} {{svc}} --port ${{self.port}} --ready-after 0.4
    env: {{SVC_NAME: db}}
    port: {p1}
    probe: {{http: /health, {FAST}}}
  api:
    command: {{py}} {{svc}} --fd ${{self.fd}} --say ${{services.db.url}}
    env: {{SVC_NAME: api}}
    port: {p2}
    socket: inherit
    probe: {{http: /health, {FAST}}}
    depends_on: {{db: {{condition: healthy}}}}
  worker:
    command: {{py}} {{svc}} --grandchild
    env: {{SVC_NAME: worker}}
    depends_on: [api]
""")
    out = harness.cli("up")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "api" in out.stdout and f"http://127.0.0.1:{p2}" in out.stdout
    st = harness.status()
    svcs = st["services"]
    assert st["phase"] == "up" and st["supervisor_alive"]
    assert [svcs[n]["state"] for n in ("db", "api", "worker")] == ["healthy", "healthy", "running"]
    # api only started once db answered (db takes 0.4 s to), worker once api had started
    every = harness.cli("logs", "-n", "100").stdout.splitlines()

    def when(service: str, text: str) -> str:
        line = next(x for x in every if x.startswith(f"{service} ") and text in x)
        return line.split("| ", 1)[1][:23]

    assert when("db", "db serving on") < when("api", "[stack] started pid")
    assert when("api", "[stack] started pid") <= when("worker", "[stack] started pid")
    assert svcs["db"]["url"] == f"http://127.0.0.1:{p1}" and svcs["db"]["uptime"] is not None

    logs = harness.cli("logs", "api", "-n", "20").stdout
    assert f"api starting http://127.0.0.1:{p1}" in logs  # sovereign-style URL passed on
    assert f"api serving on {p2}" in logs  # served on the socket the stack bound

    follower = harness.popen("logs", "api", "-f", "-n", "1000")
    before = svcs["api"]["pid"]
    out = harness.cli("restart", "api")
    assert out.returncode == 0, out.stderr
    assert harness.status()["services"]["api"]["pid"] != before
    assert follower.stdout is not None
    os.set_blocking(follower.stdout.fileno(), False)
    followed = ""
    deadline = time.monotonic() + 10
    while f"pid {before} exited" not in followed and time.monotonic() < deadline:
        followed += follower.stdout.read() or ""
        time.sleep(0.05)
    follower.terminate()
    follower.wait(timeout=5)
    assert f"pid {before} exited" in followed, followed[-500:]

    tree = [
        p
        for p in harness.processes()
        if "svc.py" in " ".join(p.cmdline()) or "sleep(600)" in " ".join(p.cmdline())
    ]
    assert len(tree) >= 4  # three services and the worker's grandchild
    out = harness.cli("down")
    assert out.returncode == 0, out.stderr
    harness.assert_nothing_left()
    assert harness.status()["phase"] == "stopped"


def test_failed_health_reports_and_leaves_nothing(harness: StackHarness) -> None:
    p1, p2 = free_port(), free_port()
    harness.write(f"""
services:
  db:
    command: {{py}} {{svc}} --port ${{self.port}}
    env: {{SVC_NAME: db}}
    port: {p1}
    probe: {{http: /health, {FAST}}}
  api:
    command: {{py}} {{svc}} --no-serve --say "cannot reach the database"
    env: {{SVC_NAME: api}}
    port: {p2}
    probe: {{http: /health, {FAST}, start_timeout: 1.5}}
    depends_on: {{db: {{condition: healthy}}}}
  ui:
    command: {{py}} {{svc}}
    depends_on: {{api: {{condition: healthy}}}}
""")
    t0 = time.monotonic()
    out = harness.cli("up")
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "api failed" in text and "not healthy after 1.5s" in text
    assert "Connection refused" in text or "connect" in text.lower()
    assert "api starting cannot reach the database" in text  # the log tail
    assert "not started: ui" in text
    assert time.monotonic() - t0 < 10
    harness.assert_nothing_left()
    st = harness.status()["services"]
    assert st["api"]["state"] == "failed" and st["db"]["state"] == "stopped"
    assert st["ui"]["state"] == "skipped"


def test_exit_before_healthy(harness: StackHarness) -> None:
    harness.write(f"""
services:
  api:
    command: {{py}} -c "import sys; print('bad config'); sys.exit(3)"
    port: {free_port()}
    probe: {{tcp: true, {FAST}}}
""")
    out = harness.cli("up")
    assert out.returncode == 1
    assert "api failed: exited with code 3 before becoming healthy" in out.stdout
    assert "bad config" in out.stdout


def test_crash_restart_with_backoff_then_cap(harness: StackHarness, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    harness.write(f"""
services:
  flaky:
    command: {{py}} {{svc}} --port ${{self.port}} --crash-after 0.3 --starts {starts} --grandchild
    port: {free_port()}
    probe: {{tcp: true, {FAST}}}
    restart: {{policy: on-failure, backoff: 0.2, max_restarts: 3, window: 60}}
""")
    assert harness.cli("up").returncode == 0
    svc = harness.wait_for(
        lambda: (s := harness.status()["services"]["flaky"])["state"] == "failed" and s,
        timeout=20,
        what="flaky to be given up on",
    )
    assert svc["restarts"] == 3
    assert "gave up after 3 restarts in 60s" in svc["reason"]
    assert svc["last_exit"] == "exited with code 1"
    assert len(starts.read_text().split()) == 4
    # the backoff is the time from an exit to the next start, from the log's timestamps
    from datetime import datetime

    stamps = [
        (datetime.fromisoformat(line[:23]).timestamp(), "exited" in line)
        for line in harness.cli("logs", "flaky", "-n", "100").stdout.splitlines()
        if "[stack] pid" in line or "[stack] started" in line
    ]
    delays = [b[0] - a[0] for a, b in itertools.pairwise(stamps) if a[1] and not b[1]]
    assert len(delays) == 3, stamps
    for got, want in zip(delays, (0.2, 0.4, 0.8), strict=True):
        assert want - 0.01 <= got < want + 0.25, delays
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()


def test_port_taken_is_moved_or_adopted(harness: StackHarness) -> None:
    taken, existing = free_port(), free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", taken))
    blocker.listen()
    outside = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "svc.py"), "--port", str(existing)],
        stdout=subprocess.DEVNULL,
    )
    try:
        harness.wait_for(lambda: _answers(existing), what="the outside server")
        harness.write(f"""
services:
  runtime:
    command: {{py}} {{svc}} --port ${{self.port}}
    port: {existing}
    adopt: true
    probe: {{http: /health, {FAST}}}
  api:
    command: {{py}} {{svc}} --port ${{self.port}} --say upstream=${{services.runtime.url}}
    port: {taken}
    probe: {{http: /health, {FAST}}}
    depends_on: {{runtime: {{condition: healthy}}}}
""")
        out = harness.cli("up")
        assert out.returncode == 0, out.stdout + out.stderr
        # the holder is named: the test process holds `taken`, the outside server `existing`
        assert f"port {taken} is taken by pid {os.getpid()} (" in out.stdout, out.stdout
        assert f"on port {existing}: pid {outside.pid} (" in out.stdout
        st = harness.status()["services"]
        assert st["api"]["port_holder"]["pid"] == os.getpid()
        assert st["api"]["port_holder"]["cmdline"] == " ".join(psutil.Process().cmdline())
        assert st["runtime"]["port_holder"]["pid"] == outside.pid
        assert "svc.py" in st["runtime"]["port_holder"]["cmdline"]
        assert st["runtime"]["adopted"] and st["runtime"]["state"] == "adopted"
        assert st["runtime"]["pid"] is None
        assert st["api"]["moved"] and st["api"]["asked_port"] == taken
        assert st["api"]["port"] != taken and _answers(st["api"]["port"])
        logs = harness.cli("logs", "api").stdout
        assert f"upstream=http://127.0.0.1:{existing}" in logs
        assert harness.cli("down").returncode == 0
        assert outside.poll() is None  # adopted, so not ours to stop
    finally:
        outside.kill()
        outside.wait()
        blocker.close()
    harness.assert_nothing_left()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            return s.recv(20).startswith(b"HTTP/1.0 200")
    except OSError:
        return False


GROUPS = """
services:
  a:
    command: {py} {svc} --grandchild --port ${self.port}
    port: PORT
    probe: {http: /health, interval: 0.05}
    stop_grace: 0.5
  b:
    command: {py} {svc} --grandchild --ignore-term
    stop_grace: 0.5
    depends_on: [a]
"""


def test_kill9_of_the_supervisor_leaves_no_orphan(harness: StackHarness) -> None:
    harness.write(GROUPS.replace("PORT", str(free_port())))
    assert harness.cli("up").returncode == 0
    st = harness.status()
    sup = psutil.Process(st["supervisor_pid"])
    tree = sup.children(recursive=True)
    cmdlines = [" ".join(p.cmdline()) for p in tree]
    assert sum("sleep(600)" in c for c in cmdlines) == 2  # grandchildren exist
    os.kill(sup.pid, signal.SIGKILL)
    harness.assert_nothing_left(timeout=5)
    for proc in tree:
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    assert harness.status()["phase"] == "supervisor gone"
    assert harness.cli("down").returncode == 0  # tidies the state: nothing runs
    assert harness.status()["phase"] == "stopped"
    # the lock died with the supervisor: the stack can come up again
    assert harness.cli("up").returncode == 0
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()


def test_down_kills_after_grace_and_leaves_no_orphan(harness: StackHarness) -> None:
    harness.write(GROUPS.replace("PORT", str(free_port())))
    assert harness.cli("up").returncode == 0
    supervisor = psutil.Process(harness.status()["supervisor_pid"])
    tree = [supervisor, *supervisor.children(recursive=True)]
    # the watchdog, two services and their two grandchildren
    assert len(tree) >= 6, [" ".join(p.cmdline())[:80] for p in tree]
    t0 = time.monotonic()
    out = harness.cli("down")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 < 5  # b ignores TERM: killed after its 0.5 s grace
    _, alive = psutil.wait_procs(tree, timeout=2)
    assert not alive, [p.pid for p in alive]
    harness.assert_nothing_left(timeout=1)
    logs = harness.cli("logs", "b").stdout
    assert "ignores TERM" in logs and "exited with code -9" in logs


def test_concurrent_up_gives_one_supervisor(harness: StackHarness, tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    harness.write(f"""
services:
  a:
    command: {{py}} {{svc}} --port ${{self.port}} --starts {starts} --ready-after 1.5
    port: {free_port()}
    probe: {{http: /health, {FAST}}}
  b:
    command: {{py}} {{svc}} --port ${{self.port}} --ready-after 0.5
    port: {free_port()}
    probe: {{http: /health, {FAST}}}
    depends_on: {{a: {{condition: healthy}}}}
""")
    first = harness.popen("up")
    harness.wait_for(lambda: starts.exists(), what="the first up to start a")
    others = [harness.popen("up") for _ in range(2)]
    states = []
    for p in others:  # each returns only once every service is healthy
        assert p.wait(timeout=30) == 0
        states.append({n: s["state"] for n, s in harness.status()["services"].items()})
    outs = [p.communicate(timeout=30)[0] for p in (first, *others)]
    assert [p.returncode for p in (first, *others)] == [0, 0, 0], outs
    assert states == [{"a": "healthy", "b": "healthy"}] * 2, outs
    assert sum("already running" in o for o in outs) == 2, outs
    assert all("b " in o and "healthy" in o for o in outs[1:]), outs  # the table
    assert len(starts.read_text().split()) == 1
    supervisors = [p for p in harness.processes() if p.pid == harness.status()["supervisor_pid"]]
    assert len(supervisors) == 1
    out = harness.cli("up")  # and later: reports the running stack
    assert out.returncode == 0 and "already running" in out.stdout
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()


def test_up_beside_an_up_that_fails_fails_too(harness: StackHarness) -> None:
    harness.write(f"""
services:
  a:
    command: {{py}} {{svc}} --port ${{self.port}}
    port: {free_port()}
    probe: {{http: /health, {FAST}}}
  b:
    command: {{py}} {{svc}} --no-serve
    port: {free_port()}
    probe: {{http: /health, {FAST}, start_timeout: 4}}
    depends_on: {{a: {{condition: healthy}}}}
""")
    first = harness.popen("up")
    harness.wait_for(
        lambda: harness.status()["services"].get("a", {}).get("pid"), what="the first up"
    )
    second = harness.cli("up")
    assert first.wait(timeout=30) == 1
    assert second.returncode == 1, second.stdout
    assert "the other `stack up` ended with the stack failed" in second.stderr
    harness.assert_nothing_left()


def test_foreground_prefixes_output_and_ctrl_c_stops_all(harness: StackHarness) -> None:
    harness.write(f"""
services:
  web:
    command: {{py}} {{svc}} --port ${{self.port}} --grandchild
    env: {{SVC_NAME: web}}
    port: {free_port()}
    probe: {{http: /health, {FAST}}}
""")
    proc = harness.popen("up", "--foreground")
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "web serving on" in line:
            break
    assert any(
        line.split("|")[0].strip().endswith("web") and "web starting" in line for line in seen
    )
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, rest
    harness.assert_nothing_left()


def test_liveness_failures_restart_a_healthy_service(harness: StackHarness) -> None:
    harness.write(f"""
services:
  api:
    command: {{py}} {{svc}} --port ${{self.port}} --sick-after 0.5
    port: {free_port()}
    probe: {{http: /health, {FAST}, liveness_interval: 0.1, failure_threshold: 2}}
    restart: {{policy: on-failure, backoff: 0.1, max_restarts: 10, window: 60}}
    stop_grace: 1
""")
    assert harness.cli("up").returncode == 0
    svc = harness.wait_for(
        lambda: (
            (s := harness.status()["services"]["api"])["restarts"] >= 1
            and s["state"] == "healthy"
            and s
        ),
        what="a restart after failed liveness probes",
    )
    assert svc["last_exit"] == "killed by SIGTERM"
    logs = harness.cli("logs", "api", "-n", "200").stdout
    first = int(logs.split("[stack] started pid ", 1)[1].split(":")[0])
    assert svc["pid"] != first
    assert f"pid {first} exited with code -15" in logs
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()


def test_down_while_up_is_still_waiting(harness: StackHarness) -> None:
    harness.write(f"""
services:
  slow:
    command: {{py}} {{svc}} --port ${{self.port}} --ready-after 30
    port: {free_port()}
    probe: {{http: /health, {FAST}}}
""")
    up = harness.popen("up")
    harness.wait_for(
        lambda: harness.status()["services"].get("slow", {}).get("pid"), what="slow to start"
    )
    assert harness.cli("down").returncode == 0
    out = up.communicate(timeout=20)[0]
    assert up.returncode == 1 and "stopped before every service was up" in out
    harness.assert_nothing_left()


RUNTIME = """
services:
  runtime:
    variants:
      - name: ollama
        when: {{installed: ollama}}
        adopt: true
        command: ollama serve
        port: {port}
        env: {{OLLAMA_HOST: "${{self.host}}:${{self.port}}"}}
        probe: {{http: /api/tags, {fast}}}
        post_healthy:
          - ollama_pull: {{host: "${{self.host}}:${{self.port}}", model: "qwen2.5-coder:7b"}}
      - name: embedded
        command: {{py}} {{svc}} --port ${{self.port}}
        port: {port}
        probe: {{http: /health, {fast}}}
"""


def test_ollama_is_started_when_installed_and_the_model_pulled(
    harness: StackHarness, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "ollama"
    fake.write_text(
        f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_ollama.py"} "$@"\n'
    )
    fake.chmod(0o755)
    harness.write(RUNTIME.format(port=free_port(), fast=FAST))
    without = harness.cli("up")  # no ollama on PATH: the fallback, said plainly
    assert without.returncode == 0, without.stdout
    assert "runtime: embedded [not used: ollama, `ollama` is not installed" in without.stdout
    assert harness.cli("down").returncode == 0

    harness.env["PATH"] = f"{bindir}:{harness.env['PATH']}"
    out = harness.cli("up")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "• runtime: ollama" in out.stdout
    assert "runtime: pulling abc123 [##########..........] 50%" in out.stdout
    assert "runtime: pulling abc123 [####################] 100%" in out.stdout
    st = harness.status()["services"]["runtime"]
    assert st["variant"] == "ollama" and st["state"] == "healthy" and st["pid"]
    assert "pulled qwen2.5-coder:7b" in harness.cli("logs", "runtime").stdout
    assert harness.cli("down").returncode == 0
    harness.assert_nothing_left()


def test_a_running_ollama_is_adopted(harness: StackHarness) -> None:
    port = free_port()
    outside = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "fake_ollama.py"), "serve"],
        env={**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}"},
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc=outside)
        harness.write(RUNTIME.format(port=port, fast=FAST))
        out = harness.cli("up")  # not installed here, but answering: adopted
        assert out.returncode == 0, out.stdout + out.stderr
        assert "runtime: ollama (already running, adopted)" in out.stdout
        said = f"runtime: adopted what already answers on port {port}: pid {outside.pid} ("
        assert said in out.stdout and "), an Ollama already running" in out.stdout, out.stdout
        holder = harness.status()["services"]["runtime"]["port_holder"]
        assert holder["pid"] == outside.pid and holder["what"] == "an Ollama already running"
        st = harness.status()["services"]["runtime"]
        assert st["adopted"] and st["pid"] is None and st["port"] == port
        assert harness.cli("down").returncode == 0
        assert outside.poll() is None
    finally:
        outside.kill()
        outside.wait()
    harness.assert_nothing_left()
