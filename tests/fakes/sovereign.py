"""Start the real sovereign service (or its embedded runtime) as a child process, e.g. in
front of a fake upstream: `with run_sovereign(env={"OLLAMA_HOST": up.url}) as sv: sv.base_url`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

import yaml

from tests.fakes.process import spawn_child, stop_process, wait_healthy

__all__ = ["Sovereign", "run_embedded", "run_service", "run_sovereign"]


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
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith("SOVEREIGN_") and k != "OLLAMA_HOST"
    }
    config_file = None
    if config is not None:
        config_file = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)  # noqa: SIM115
        yaml.safe_dump(config, config_file)
        config_file.close()
        child_env["SOVEREIGN_CONFIG"] = config_file.name
    child_env.update(env or {})
    try:
        with run_service("services.sovereign", child_env, ready_within=30) as server:
            yield server
    finally:
        if config_file is not None:
            os.unlink(config_file.name)


@contextmanager
def run_embedded(ready_within: float = 180) -> Iterator[Sovereign]:
    """The embedded llama.cpp runtime as a child process, once /health says the model loaded."""
    with run_service(
        "services.sovereign.embedded", dict(os.environ), ready_within, need_200=True
    ) as server:
        yield server


@contextmanager
def run_service(
    module: str, env: dict[str, str], ready_within: float, need_200: bool = False
) -> Iterator[Sovereign]:
    """`python -m <module> --fd N` with a free port; ready when /health answers (200)."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    proc, port = spawn_child(module, [], env, stdout=log, stderr=subprocess.STDOUT)
    server = Sovereign(proc, f"http://127.0.0.1:{port}", log)
    try:
        try:
            wait_healthy(proc, server.url, module, ready_within, need_200=need_200)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {server.output()[-2000:]}") from None
        yield server
    finally:
        stop_process(proc, grace=10)
        log.close()
