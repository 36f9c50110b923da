"""Helpers for the stack tests: throwaway stack files, the real CLI in a subprocess, and a way
to find every process a test's stack started (they all carry a marker in their environment)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.processes import wait_until

HERE = Path(__file__).parent
SVC = HERE / "svc.py"


class StackHarness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.file = root / "stack.yaml"
        self.marker = uuid.uuid4().hex
        self.env = {**os.environ, "STACK_TEST_MARK": self.marker, "COLUMNS": "200"}
        self.env.pop("STACK_FILE", None)

    def write(self, text: str) -> Path:
        self.file.write_text(text.replace("{py}", sys.executable).replace("{svc}", str(SVC)))
        return self.file

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stack", *args, "--file", str(self.file)],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "stack", *args, "--file", str(self.file)],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def status(self) -> dict[str, Any]:
        out = self.cli("status", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def wait_for(self, cond: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        try:
            return wait_until(cond, timeout)
        except AssertionError:
            raise AssertionError(f"timed out waiting for {what}") from None

    def processes(self) -> list[psutil.Process]:
        """Every live process carrying this test's marker (services, grandchildren, supervisor)."""
        found = []
        me = os.getpid()
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == me:
                continue
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.environ().get("STACK_TEST_MARK") == self.marker:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def assert_nothing_left(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, "left running: " + "; ".join(
            f"{p.pid} {' '.join(p.cmdline())[:120]}" for p in left if p.is_running()
        )

    def cleanup(self) -> None:
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[StackHarness]:
    h = StackHarness(tmp_path)
    yield h
    if h.processes():
        # a test that failed half-way: take its stack down the normal way, then check
        h.cli("down", timeout=60)
    left = h.processes()
    h.cleanup()
    assert not left, f"test left {len(left)} processes running"
