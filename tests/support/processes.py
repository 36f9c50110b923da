"""Start the project's services as real child processes on free ports, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers at all (any status); fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@dataclass
class ServiceProcess:
    proc: subprocess.Popen
    port: int
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_started(self) -> None:
        """Until /health answers at all; if it never does, stopped, its log in the error."""
        try:
            wait_http(f"{self.base_url}/health", proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"assistants did not start:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def migrate(database_url: str) -> None:
    """``alembic upgrade head`` against ``database_url``, as a user would run it."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


@contextmanager
def run_assistants(
    database_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    do_migrate: bool = True,
    wait: bool = True,
) -> Iterator[ServiceProcess]:
    """``python -m services.assistants`` on a free port against ``database_url``."""
    if do_migrate:
        migrate(database_url)
    service = start_assistants(database_url, log_path, env=env, wait=wait)
    try:
        yield service
    finally:
        service.stop()


@contextmanager
def run_module_assistants(
    request: Any,
    database_url: str,
    upstream_url: str,
    tmp_path_factory: Any,
    base_env: dict[str, str],
) -> Iterator[ServiceProcess]:
    """The service for one test module, pointed at its upstream: ``base_env`` first, then
    the module's own ``SERVICE_ENV`` (a pytest ``request`` and ``tmp_path_factory``)."""
    env = {
        **base_env,
        "SOVEREIGN_PLAYGROUND_URL": upstream_url,
        **getattr(request.module, "SERVICE_ENV", {}),
    }
    log = tmp_path_factory.mktemp("logs") / "assistants.log"
    with run_assistants(database_url, log, env=env) as service:
        yield service


Launch = Callable[..., tuple[ServiceProcess, Any]]


@contextmanager
def relaunching(database_url: str, log_dir: Path, env: dict[str, str]) -> Iterator[Launch]:
    """``start(**more_env)`` starts the service (again) on the migrated database and returns
    it with an SDK client; every process started is stopped at the end."""
    import openai

    migrate(database_url)
    started: list[ServiceProcess] = []

    def start(**more_env: str) -> tuple[ServiceProcess, Any]:
        log = log_dir / f"assistants-{len(started)}.log"
        service = start_assistants(database_url, log, env={**env, **more_env})
        started.append(service)
        sdk = openai.OpenAI(base_url=f"{service.base_url}/v1", api_key="test-key", max_retries=0)
        return service, sdk

    try:
        yield start
    finally:
        for service in started:
            service.stop()


def start_assistants(
    database_url: str,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    wait: bool = True,
    port: int | None = None,
) -> ServiceProcess:
    port = port or free_port()
    full_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEY": "test-key",
        "SOVEREIGN_PLAYGROUND_URL": "http://127.0.0.1:9",
        "LOG_LEVEL": "INFO",
        # Uploaded files beside the log, never in the project's data/ (PostgreSQL's default).
        "FILES_DIR": str(log_path.parent / "files"),
        **(env or {}),
    }
    log_file = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.assistants"],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_file.close()
    service = ServiceProcess(proc=proc, port=port, log_path=log_path, env=full_env)
    if wait:
        service.wait_started()
    return service
