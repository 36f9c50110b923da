"""Start the real sovereign service as a child process (for tests that put it in front of a
fake upstream): `with run_sovereign(env={"OLLAMA_HOST": up.url}) as sv: sv.base_url`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import httpx
import yaml

from tests.fakes.process import ROOT, bind_free_socket

__all__ = ["Sovereign", "run_sovereign"]


@dataclass
class Sovereign:
    proc: subprocess.Popen[bytes]
    url: str
    log: IO[bytes]

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


@contextmanager
def run_sovereign(
    *, env: dict[str, str] | None = None, config: dict[str, Any] | None = None
) -> Iterator[Sovereign]:
    """`python -m services.sovereign --fd N` as a child process, until the block exits."""
    sock = bind_free_socket()
    port = sock.getsockname()[1]
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith("SOVEREIGN_") and k != "OLLAMA_HOST"
    }
    child_env["PYTHONPATH"] = str(ROOT)
    config_file = None
    if config is not None:
        config_file = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)  # noqa: SIM115
        yaml.safe_dump(config, config_file)
        config_file.close()
        child_env["SOVEREIGN_CONFIG"] = config_file.name
    child_env.update(env or {})
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.sovereign", "--fd", str(sock.fileno())],
        cwd=ROOT,
        env=child_env,
        pass_fds=(sock.fileno(),),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sock.close()
    server = Sovereign(proc, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"sovereign exited: {server.output()[-2000:]}")
            try:
                httpx.get(server.url + "/health", timeout=5)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        if config_file is not None:
            os.unlink(config_file.name)
