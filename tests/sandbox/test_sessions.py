"""Sessions: state kept, idle sessions ended with their memory and disk freed, eviction,
cancellation, and files crossing the boundary without trusting what the code left there."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import psutil

from services.assistants.sandbox import SandboxLimits, SandboxPool

from .conftest import TEST_LIMITS


async def test_state_persists_and_sessions_are_separate(pool: SandboxPool) -> None:
    await pool.execute("a", "x = 1")
    await pool.execute("b", "x = 2")
    a = await pool.execute("a", "x")
    b = await pool.execute("b", "x")
    assert (a.logs, b.logs) == ("1\n", "2\n")


async def test_idle_sessions_end_and_free_memory_and_disk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool = SandboxPool(limits=TEST_LIMITS, work_dir=tmp_path, idle_seconds=0.5)
    try:
        await pool.execute("idle", "open('/mnt/data/f.bin', 'wb').write(b'x' * 100000)")
        session = pool.sessions["idle"]
        launcher = psutil.Process(session.pid)
        tree = [launcher, *launcher.children(recursive=True)]
        assert session.data_dir.exists()
        deadline = time.monotonic() + 10
        while (
            "idle" in pool.sessions or session.directory.exists()
        ) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert "idle" not in pool.sessions
        assert not session.directory.exists()
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
        if session.cgroup is not None:
            assert not any(d.exists() for d in session.cgroup.dirs)
        # The thread's next execution gets a fresh session.
        again = await pool.execute("idle", "import os\nprint(os.listdir('/mnt/data'))")
        assert again.logs == "[]\n"
    finally:
        await pool.stop()


async def test_the_least_recently_used_idle_session_makes_room(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pool = SandboxPool(limits=TEST_LIMITS, work_dir=tmp_path, max_sessions=2)
    try:
        await pool.execute("old", "v = 'old'")
        await pool.execute("new", "v = 'new'")
        await pool.execute("third", "v = 'third'")
        assert set(pool.sessions) == {"new", "third"}
        assert (await pool.execute("new", "v")).logs == "'new'\n"
    finally:
        await pool.stop()


async def test_a_cancelled_execution_stops_the_code(pool: SandboxPool) -> None:
    task = asyncio.create_task(
        pool.execute(
            "cancel", "import time\nopen('/mnt/data/started', 'w').close()\ntime.sleep(60)"
        )
    )
    session_dir = None
    for _ in range(100):
        await asyncio.sleep(0.05)
        if "cancel" in pool.sessions:
            session_dir = pool.sessions["cancel"].data_dir
            if (session_dir / "started").exists():
                break
    task.cancel()
    started = time.monotonic()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 3
    assert not pool.sessions["cancel"].alive
    after = await pool.execute("cancel", "print('next')")
    assert after.logs == "next\n"


async def test_outputs_never_follow_links_or_block_on_fifos(pool: SandboxPool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    host_secret = tmp_path / "host-secret.txt"
    host_secret.write_text("host secret")
    code = f"""
import os
os.symlink({str(host_secret)!r}, "/mnt/data/link.txt")
os.symlink("/etc/shadow", "/mnt/data/shadow")
os.mkfifo("/mnt/data/pipe")
os.mkdir("/mnt/data/sub")
os.symlink("/", "/mnt/data/sub/root")
open("/mnt/data/real.txt", "w").write("real")
"""
    result = await asyncio.wait_for(pool.execute("links", code), 20)
    assert result.error is None, result.logs
    assert [(f.path, f.data) for f in result.files] == [("/mnt/data/real.txt", b"real")]


async def test_inputs_replace_what_the_code_planted(pool: SandboxPool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    host_file = tmp_path / "host.txt"
    host_file.write_text("untouched")
    await pool.execute("plant", f"import os\nos.symlink({str(host_file)!r}, '/mnt/data/in.csv')")
    session = pool.sessions["plant"]
    path = session.put_file("../../in.csv", b"a,b\n1,2\n")
    assert path == "/mnt/data/in.csv"
    assert host_file.read_text() == "untouched"
    assert not os.path.islink(session.data_dir / "in.csv")
    read = await pool.execute("plant", "print(open('/mnt/data/in.csv').read())")
    assert read.logs == "a,b\n1,2\n\n"


async def test_limits_apply_to_the_session_settings(tmp_path) -> None:  # type: ignore[no-untyped-def]
    limits = SandboxLimits(timeout_seconds=1.5, max_processes=16)
    pool = SandboxPool(limits=limits, work_dir=tmp_path)
    try:
        started = time.monotonic()
        result = await pool.execute("t", "while True: pass")
        assert result.error and "1.5 s" in result.error
        assert time.monotonic() - started < 1.5 + 3
        nproc = await pool.execute(
            "t", "import resource\nprint(resource.getrlimit(resource.RLIMIT_NPROC))"
        )
        assert nproc.logs == "(16, 16)\n"
    finally:
        await pool.stop()
