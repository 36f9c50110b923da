"""The assistants service's storage fault as the stack sees it: with its SQLite file made
immutable, `stack status` shows the service's health failing with the 503, and healthy
again once the fault clears, with the same process (no restart needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.processes import free_port, migrate

if TYPE_CHECKING:
    from conftest import StackHarness

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr"
    ),
]


def test_status_shows_the_storage_fault_and_its_end(harness: StackHarness, tmp_path: Path) -> None:
    database = tmp_path / "assistants.db"
    migrate(f"sqlite:///{database}")
    harness.write(f"""
services:
  assistants:
    command: {{py}} -m services.assistants --fd ${{self.fd}}
    port: {free_port()}
    socket: inherit
    env:
      API_HOST: ${{self.host}}
      API_PORT: ${{self.port}}
      DATABASE_URL: sqlite:///{database}
      SOVEREIGN_PLAYGROUND_URL: http://127.0.0.1:9
    probe: {{http: /health, interval: 0.1, liveness_interval: 0.3, failure_threshold: 1000}}
    restart: {{policy: "no"}}
""")
    out = harness.cli("up")
    assert out.returncode == 0, out.stdout + out.stderr
    pid = harness.status()["services"]["assistants"]["pid"]
    files = [str(database), f"{database}-wal", f"{database}-shm"]
    subprocess.run(["chattr", "+i", *files], check=True)
    try:
        service = harness.wait_for(
            lambda: (
                (s := harness.status()["services"]["assistants"])["health"].startswith("failing")
                and s
            ),
            what="the health probe to fail",
        )
        assert "503" in service["health"], service
    finally:
        subprocess.run(["chattr", "-i", *files], check=False)
    service = harness.wait_for(
        lambda: (s := harness.status()["services"]["assistants"])["health"] == "healthy" and s,
        what="the service to be healthy again",
    )
    assert service["pid"] == pid and service["state"] == "healthy"
    assert harness.cli("down").returncode == 0
