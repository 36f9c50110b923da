"""Whatever the code does, its execution ends within its limit and other sessions go on."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.assistants.sandbox import ExecutionResult, SandboxPool

from .conftest import TEST_LIMITS, keeps_answering

# Room for the machine being busy: a case must end within its limit plus this.
SLACK = 4.0


async def while_another_session_answers(
    pool: SandboxPool, code: str
) -> tuple[ExecutionResult, list[float]]:
    """Run ``code`` in one session while a second one keeps computing; both outcomes."""
    await pool.execute("neighbour", "print('ready')")
    stop = asyncio.Event()
    neighbour = asyncio.create_task(keeps_answering(pool, "neighbour", stop))
    try:
        result = await pool.execute("culprit", code)
    finally:
        stop.set()
    durations = await neighbour
    assert durations, "the other session never answered"
    return result, durations


async def assert_session_recovers(pool: SandboxPool) -> None:
    after = await pool.execute("culprit", "print('alive')")
    assert after.error is None and after.logs.strip() == "alive"


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("while True:\n    pass", id="infinite-loop"),
        pytest.param("import time\ntime.sleep(3600)", id="hang"),
        pytest.param(
            "import subprocess\nsubprocess.Popen(['sleep', '3600'])\n"
            "import os, time\nos.fork()\ntime.sleep(3600)",
            id="hang-in-children",
        ),
    ],
)
async def test_time_limit_ends_the_whole_tree(pool: SandboxPool, code: str) -> None:
    started = time.monotonic()
    result, durations = await while_another_session_answers(pool, code)
    elapsed = time.monotonic() - started
    assert result.error and "time limit" in result.error
    assert elapsed < TEST_LIMITS.timeout_seconds + SLACK
    # Nothing of the killed session is left running.
    session = pool.sessions["culprit"]
    if session.cgroup is not None:
        assert session.cgroup.pids() == set()
    assert max(durations) < TEST_LIMITS.timeout_seconds
    await assert_session_recovers(pool)


async def test_fork_bomb_is_bounded_per_session(pool: SandboxPool) -> None:
    code = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(3600)
            os._exit(0)
        children += 1
except OSError as exc:
    print("stopped at", children, type(exc).__name__)
while True:
    try:
        os.fork() or time.sleep(3600)
    except OSError:
        pass
"""
    result, durations = await while_another_session_answers(pool, code)
    assert result.error and "time limit" in result.error
    stopped_at = int(result.logs.split("stopped at")[1].split()[0])
    assert 0 < stopped_at < TEST_LIMITS.max_processes
    assert max(durations) < TEST_LIMITS.timeout_seconds
    # The neighbour could still start processes while the bomb ran at its ceiling.
    spawn = await pool.execute(
        "neighbour", "import subprocess\nprint(subprocess.run(['true']).returncode)"
    )
    assert spawn.error is None and spawn.logs.strip() == "0"
    await assert_session_recovers(pool)


async def test_thread_bomb_is_bounded(pool: SandboxPool) -> None:
    code = """
import threading, time
threads = []
try:
    while True:
        t = threading.Thread(target=time.sleep, args=(3600,), daemon=True)
        t.start()
        threads.append(t)
except RuntimeError as exc:
    print("stopped at", len(threads), exc)
"""
    result, _ = await while_another_session_answers(pool, code)
    assert result.error is None, result.error
    assert int(result.logs.split("stopped at")[1].split()[0]) < TEST_LIMITS.max_processes


async def test_memory_hog_gets_memory_error_and_the_session_lives(pool: SandboxPool) -> None:
    await pool.execute("culprit", "kept = 41")
    code = "hog = []\nwhile True:\n    hog.append(bytearray(16 * 1024 * 1024))"
    result, _ = await while_another_session_answers(pool, code)
    assert result.error is not None and "MemoryError" in result.error
    again = await pool.execute("culprit", "del hog\nprint(kept + 1)")
    assert again.error is None and again.logs.strip() == "42"


async def test_one_huge_allocation_fails(pool: SandboxPool) -> None:
    result = await pool.execute("culprit", "x = bytearray(4 * 1024 ** 3)")
    assert result.error is not None and "MemoryError" in result.error


async def test_output_flood_is_capped(pool: SandboxPool) -> None:
    result, _ = await while_another_session_answers(
        pool, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)"
    )
    assert result.error and "time limit" in result.error
    assert len(result.logs.encode()) <= TEST_LIMITS.log_bytes
    assert result.dropped_bytes > 0
    shown = result.model_output(TEST_LIMITS.output_chars)
    assert len(shown) <= TEST_LIMITS.output_chars + 500
    assert "time limit" in shown


async def test_finite_flood_returns_head_and_tail(pool: SandboxPool) -> None:
    code = "print('BEGIN')\nprint('y' * 30_000_000)\nprint('END')"
    result = await pool.execute("culprit", code)
    assert result.error is None
    assert result.logs.startswith("BEGIN")
    assert result.dropped_bytes > 0
    shown = result.model_output(TEST_LIMITS.output_chars)
    assert len(shown) <= TEST_LIMITS.output_chars + 200
    assert "more bytes of output not shown" in shown


@pytest.mark.parametrize(
    "code,expected",
    [
        pytest.param("import os\nos._exit(3)", "exit status 3", id="exit"),
        pytest.param("import ctypes\nctypes.string_at(0)", "SIGSEGV", id="segfault"),
        pytest.param(
            "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "SIGKILL", id="kill"
        ),
    ],
)
async def test_crash_ends_the_execution_with_an_error(
    pool: SandboxPool, code: str, expected: str
) -> None:
    result, _ = await while_another_session_answers(pool, code)
    assert result.error is not None and expected in result.error, result.error
    assert "restarted" in result.error
    await assert_session_recovers(pool)


async def test_file_size_and_tmp_size_are_limited(pool: SandboxPool) -> None:
    big, part = TEST_LIMITS.file_bytes * 2, TEST_LIMITS.file_bytes - 1024
    code = f"""
writes = [("/mnt/data/big.bin", {big})] + [(f"/tmp/{{n}}.bin", {part}) for n in range(3)]
for path, size in writes:
    try:
        with open(path, "wb") as f:
            f.write(b"z" * size)
        print(path, "written")
    except OSError as exc:
        print(path, "refused", exc.errno)
"""
    result = await pool.execute("culprit", code)
    assert result.error is None, result.error
    lines = result.logs.splitlines()
    assert lines[0] == "/mnt/data/big.bin refused 27"  # EFBIG
    assert "refused 28" in result.logs  # ENOSPC: /tmp is full
    # The part of big.bin that was written is under the limit.
    assert all(
        f.path != "/mnt/data/big.bin" or len(f.data) <= TEST_LIMITS.file_bytes for f in result.files
    )


async def test_open_files_are_limited(pool: SandboxPool) -> None:
    code = """
files = []
try:
    while True:
        files.append(open("/dev/null"))
except OSError as exc:
    print("stopped at", len(files), exc.errno)
"""
    result = await pool.execute("culprit", code)
    assert result.error is None
    assert int(result.logs.split()[2]) < TEST_LIMITS.open_files


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            "import time\nfor n in range(1000):\n"
            "    open(f'/mnt/data/big{n}.bin', 'wb').write(b'z' * 4_000_000)\n    time.sleep(0.01)",
            id="bytes",
        ),
        pytest.param(
            "import os\nos.mkdir('/mnt/data/many')\nfor n in range(100_000):\n"
            "    open(f'/mnt/data/many/{n}', 'w').close()",
            id="entries",
        ),
    ],
)
async def test_mnt_data_has_a_quota(pool: SandboxPool, code: str) -> None:
    await pool.execute("culprit", "keep = 1\nopen('/mnt/data/kept.txt', 'w').write('kept')")
    session = pool.sessions["culprit"]
    started = time.monotonic()
    result, _ = await while_another_session_answers(pool, code)
    assert time.monotonic() - started < TEST_LIMITS.timeout_seconds
    assert result.error and "/mnt/data went over its limit" in result.error
    assert sorted(p.name for p in session.data_dir.iterdir()) == ["kept.txt"]
    after = await pool.execute("culprit", "print(open('/mnt/data/kept.txt').read())")
    assert after.logs == "kept\n"
