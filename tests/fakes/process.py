"""Start a fake upstream as a real child process on a free port, and stop it again.

The parent binds the listening socket (port 0) and hands its fd to the child, so there is
no window between "this port is free" and "the child has taken it".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from services.serving import serve

__all__ = [
    "FakeUpstream",
    "bind_free_socket",
    "run_fake",
    "serve_app_main",
    "spawn_child",
    "stop_process",
    "wait_healthy",
]

ROOT = Path(__file__).resolve().parents[2]


def bind_free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


class FakeUpstream:
    """A running fake: its URLs, the requests it has seen, and how to stop it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, api_prefix: str) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = self.url + api_prefix

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far: method, path, authorization, body, completed."""
        return httpx.get(f"{self.url}/_requests", timeout=5).json()

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r["path"].endswith(("/chat/completions", "/chat"))]

    def asked(self, word: str) -> int:
        """How many chat requests had ``word`` in their last message."""
        return sum(1 for r in self.chat_requests() if word in str(r["body"]["messages"][-1]))

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Poll /_requests until predicate(requests) holds; returns the last list seen."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.requests()
            if predicate(seen) or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def cancelled(self, marker: str, timeout: float) -> bool:
        """Whether the last request whose body holds `marker` was cut off (waiting for it)."""

        def cut_off(requests: list[dict[str, Any]]) -> bool:
            mine = [r for r in requests if marker in json.dumps(r["body"])]
            return bool(mine) and mine[-1].get("cancelled") is True

        return cut_off(self.wait_for(cut_off, timeout))

    def stop(self) -> None:
        stop_process(self.proc, grace=5)


def stop_process(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, up to `grace` seconds to exit, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def spawn_child(
    module: str, args: list[str], env: dict[str, str], **popen: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m <module> --fd N *args` serving a freshly bound free port: (process, port)."""
    sock = bind_free_socket()
    port = sock.getsockname()[1]
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--fd", str(sock.fileno()), *args],
        cwd=ROOT,
        env=env,
        pass_fds=(sock.fileno(),),
        **popen,
    )
    sock.close()
    return proc, port


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, name: str, within: float, *, need_200: bool = True
) -> None:
    """Poll `url`/health until it answers (200, unless need_200 is False).

    RuntimeError when the process exits first or `within` seconds pass.
    """
    deadline = time.monotonic() + within
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            status = httpx.get(f"{url}/health", timeout=5).status_code
            if status == 200 or not need_200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready within {within:g}s")
        time.sleep(0.05)


@contextmanager
def run_fake(module: str, script: Any, api_prefix: str) -> Iterator[FakeUpstream]:
    """Run `python -m <module> --fd N --script FILE` until the block exits."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(script, f)
        script_path = f.name
    proc, port = spawn_child(module, ["--script", script_path], dict(os.environ))
    fake = FakeUpstream(proc, port, api_prefix)
    try:
        wait_healthy(proc, fake.url, "fake upstream", within=15)
        yield fake
    finally:
        fake.stop()
        os.unlink(script_path)


def serve_app_main(build_app: Any, argv: list[str] | None = None) -> None:
    """Entry point shared by the fakes: --fd (inherited socket) or --port, and --script."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", required=True)
    args = parser.parse_args(argv)
    script = json.loads(Path(args.script).read_text())
    app = build_app(script)
    options: dict[str, Any] = {"log_level": "warning", "access_log": False}
    serve(app, host="127.0.0.1", port=args.port, fd=args.fd, **options)
