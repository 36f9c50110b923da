"""A runtime that crashes during its warm-up (SIGSEGV on its first generation, before its
/health turns 200) makes `stack up` fail at once with the crash, its last log lines and what
to do, and leaves nothing running."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import pytest

from tests.support.processes import free_port

if TYPE_CHECKING:
    from conftest import StackHarness

pytestmark = pytest.mark.timeout(90)

# Serves /health 503 ("warming up") on the inherited socket, then dies by SIGSEGV in its
# first generation, as a llama.cpp build that does not work on this CPU would.
RUNTIME = r"""
import http.server, os, signal, socket, sys, threading, time

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()
        self.wfile.write(b'{"status": "loading"}')
    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket.close()
server.socket = socket.socket(fileno=int(sys.argv[1]))
threading.Thread(target=server.serve_forever, daemon=True).start()
print("model loaded: scripted-270m", flush=True)
print("warm-up: generating one token", flush=True)
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_a_runtime_that_segfaults_in_warm_up_fails_the_up(harness: StackHarness) -> None:
    script = harness.root / "runtime.py"
    script.write_text(RUNTIME)
    harness.write(f"""
services:
  runtime:
    command: {sys.executable} {script} ${{self.fd}}
    port: {free_port()}
    socket: inherit
    probe: {{http: /health, interval: 0.1, start_timeout: 300}}
    restart: {{policy: on-failure, backoff: 1, max_restarts: 5, window: 300}}
    hint: reinstall the runtime with its pinned version
  sovereign:
    command: {{py}} {{svc}} --fd ${{self.fd}} --say ${{services.runtime.url}}
    port: {free_port()}
    socket: inherit
    probe: {{http: /health, interval: 0.1}}
    depends_on: {{runtime: {{condition: healthy}}}}
""")
    t0 = time.monotonic()
    out = harness.cli("up", timeout=60)
    took = time.monotonic() - t0
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert took < 10, took  # not the 300 s start timeout, not five restarts
    assert "runtime failed: killed by SIGSEGV before becoming healthy" in text
    assert "warm-up: generating one token" in text  # the last log lines
    assert "what to do: runtime crashed: a fault in the program or in a native library" in text
    assert "`stack logs runtime` has its whole log" in text
    assert "reinstall the runtime with its pinned version" in text  # the stack file's hint
    assert "not started: sovereign" in text
    assert "│ " in text and "healthy" not in text.replace("becoming healthy", "")
    st = harness.status()["services"]
    assert st["runtime"]["state"] == "failed" and st["runtime"]["restarts"] == 0
    assert st["runtime"]["last_exit"] == "killed by SIGSEGV"
    assert st["sovereign"]["state"] == "skipped"
    harness.assert_nothing_left()
