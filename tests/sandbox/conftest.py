"""Fixtures for the sandbox suites: a real SandboxPool (bubblewrap) with small limits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from services.assistants.sandbox import SandboxLimits, SandboxPool, SandboxUnavailable

# Small limits, so that every resource case ends in seconds.
TEST_LIMITS = SandboxLimits(
    timeout_seconds=6.0,
    cpu_seconds=30,
    memory_bytes=512 * 1024 * 1024,
    max_processes=32,
    open_files=64,
    file_bytes=8 * 1024 * 1024,
    tmp_bytes=16 * 1024 * 1024,
    disk_bytes=32 * 1024 * 1024,
    disk_entries=500,
    output_chars=2_000,
    log_bytes=50_000,
)


@pytest.fixture
async def pool(tmp_path) -> AsyncIterator[SandboxPool]:  # type: ignore[no-untyped-def]
    sandboxes = SandboxPool(limits=TEST_LIMITS, work_dir=tmp_path / "sandboxes")
    try:
        await sandboxes.ensure_available()
    except SandboxUnavailable as exc:
        if os.environ.get("CI"):
            raise  # CI installs bubblewrap: a missing sandbox there is a failure
        pytest.skip(str(exc))
    try:
        yield sandboxes
    finally:
        await sandboxes.stop()


async def keeps_answering(pool: SandboxPool, key: str, stop: asyncio.Event) -> list[float]:
    """Run a small computation in ``key`` over and over until ``stop``; each one's duration."""
    durations: list[float] = []
    loop = asyncio.get_running_loop()
    n = 0
    while not stop.is_set():
        n += 1
        started = loop.time()
        result = await pool.execute(key, f"print({n} * 3)")
        assert result.error is None, result.error
        assert result.logs.strip() == str(n * 3)
        durations.append(loop.time() - started)
        await asyncio.sleep(0.05)
    return durations
