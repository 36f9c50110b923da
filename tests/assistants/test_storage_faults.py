"""Storage faults under a running service, with real files: the SQLite database made
immutable (``chattr +i``), deleted, and on a full filesystem (a small tmpfs mounted here).

For each: the process survives, writes answer 503 in OpenAI's shape with the reason,
/health is unhealthy (503), nothing acknowledged is lost (every acked message is in the
file afterwards), and the service serves again by itself once the fault clears.
Needs root (chattr, mount); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.support.openapi import assert_matches
from tests.support.processes import ServiceProcess, migrate, start_assistants, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("chattr") is None, reason="needs root and chattr"
)

HEADERS = {"Authorization": "Bearer test-key"}


class Writer:
    """Posts messages to one thread from a thread of its own, one keep-alive connection,
    and remembers which were acknowledged (200) and what else came back."""

    def __init__(self, service: ServiceProcess, thread_id: str) -> None:
        self.client = httpx.Client(base_url=f"{service.base_url}/v1", headers=HEADERS, timeout=30)
        self.thread_id = thread_id
        self.acked: list[str] = []
        self.refused: list[httpx.Response] = []
        self.other: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._n = 0

    def write_once(self) -> httpx.Response:
        self._n += 1
        body = {"role": "user", "content": f"message {self._n}"}
        response = self.client.post(f"/threads/{self.thread_id}/messages", json=body)
        if response.status_code == 200:
            self.acked.append(response.json()["id"])
        elif response.status_code == 503:
            self.refused.append(response)
        else:
            self.other.append(f"{response.status_code} {response.text}")
        return response

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.write_once()
            except httpx.HTTPError as exc:  # a reset connection is a failure too
                self.other.append(repr(exc))
            time.sleep(0.01)

    def __enter__(self) -> Writer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)


@contextmanager
def service_on(database: Path, log: Path) -> Iterator[tuple[ServiceProcess, str]]:
    url = f"sqlite:///{database}"
    migrate(url)
    service = start_assistants(url, log)
    try:
        created = httpx.post(f"{service.base_url}/v1/threads", headers=HEADERS, json={})
        yield service, created.json()["id"]
    finally:
        service.stop()


def stored_ids(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM messages")}


def assert_faulted(service: ServiceProcess, writer: Writer, says: str) -> None:
    """Writes are refused with the reason, /health is unhealthy, the process lives."""
    refused = wait_until(lambda: (r := writer.write_once()).status_code == 503 and r, timeout=10)
    assert_matches("ErrorResponse", refused.json())
    error = refused.json()["error"]
    assert error["code"] == "database_unavailable" and says in error["message"], error
    health = httpx.get(f"{service.base_url}/health", timeout=10)
    assert health.status_code == 503, health.text
    assert health.json()["status"] == "unhealthy"
    database = health.json()["checks"]["database"]
    assert database["status"] == "unhealthy" and says in database["error"], database
    assert service.proc.poll() is None, service.log()


def assert_recovered(service: ServiceProcess, writer: Writer) -> None:
    wait_until(lambda: writer.write_once().status_code == 200, timeout=15)
    assert httpx.get(f"{service.base_url}/health", timeout=10).json()["status"] != "unhealthy"
    assert service.proc.poll() is None, service.log()


def exercise(
    service: ServiceProcess,
    thread_id: str,
    database: Path,
    fault: Callable[[], None],
    clear: Callable[[], None],
    says: str,
) -> None:
    writer = Writer(service, thread_id)
    with writer:
        time.sleep(0.3)
        fault()
        time.sleep(0.5)
        os.sync()  # written-back pages of the -shm index would fault on the next write
        time.sleep(0.5)
    assert_faulted(service, writer, says)
    clear()
    assert_recovered(service, writer)
    with writer:
        time.sleep(0.3)
    assert writer.refused and not writer.other, writer.other[:3]
    service.stop()
    assert service.proc.returncode in (0, -15), (service.proc.returncode, service.log())
    lost = set(writer.acked) - stored_ids(database)
    assert not lost, f"{len(lost)} of {len(writer.acked)} acknowledged messages are not stored"


def test_an_immutable_database_is_refused_then_served_again(tmp_path: Path) -> None:
    database = tmp_path / "assistants.db"
    files = [str(database), f"{database}-wal", f"{database}-shm"]
    with service_on(database, tmp_path / "log") as (service, thread_id):

        def fault() -> None:
            subprocess.run(["chattr", "+i", *files], check=True)

        def clear() -> None:
            subprocess.run(["chattr", "-i", *files], check=True)

        try:
            exercise(service, thread_id, database, fault, clear, "not writable")
        finally:
            subprocess.run(["chattr", "-i", *files], check=False)


def test_a_deleted_database_is_refused_until_restored(tmp_path: Path) -> None:
    database = tmp_path / "assistants.db"
    backup = tmp_path / "backup.db"
    with service_on(database, tmp_path / "log") as (service, thread_id):
        writer = Writer(service, thread_id)
        for _ in range(5):
            assert writer.write_once().status_code == 200
        with sqlite3.connect(database) as source, sqlite3.connect(backup) as target:
            source.backup(target)
        database.unlink()
        assert_faulted(service, writer, "deleted")
        acked_before = len(writer.acked)
        with writer:  # keeps trying while the file is gone: nothing may be acknowledged
            time.sleep(1.0)
        assert len(writer.acked) == acked_before == 5
        shutil.copy(backup, database)  # the operator restores the backup
        assert_recovered(service, writer)
        assert not writer.other, writer.other[:3]
        service.stop()
        assert service.proc.returncode in (0, -15), (service.proc.returncode, service.log())
        assert set(writer.acked) <= stored_ids(database)


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_filesystem_is_refused_then_served_again(small_tmpfs: Path) -> None:
    database = small_tmpfs / "assistants.db"
    filler = small_tmpfs / "filler"
    with service_on(database, small_tmpfs.parent / "log") as (service, thread_id):

        def fault() -> None:
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:  # ENOSPC: the filesystem is full
                pass
            finally:
                os.close(fd)

        exercise(service, thread_id, database, fault, filler.unlink, "full")


def test_a_run_is_not_reported_recovered_while_its_state_cannot_be_written(
    tmp_path: Path,
) -> None:
    """kill -9 mid-run, restart on an immutable file: the lapsed run is neither recovered
    nor said to be; once the file is writable again it is, and it completes."""
    database = tmp_path / "assistants.db"
    url = f"sqlite:///{database}"
    files = [str(database), f"{database}-wal", f"{database}-shm"]
    script = [
        {"match": "slow", "text": "x " * 40, "chunks": 40, "tokens_per_s": 8},
        {"match": "slow", "text": "Recovered answer."},
    ]
    env = {"RUN_LEASE_SECONDS": "1", "RUN_POLL_SECONDS": "0.2"}
    with run_openai_upstream(script) as upstream:
        env["SOVEREIGN_PLAYGROUND_URL"] = upstream.url
        migrate(url)
        first = start_assistants(url, tmp_path / "first.log", env=env)
        api = httpx.Client(base_url=f"{first.base_url}/v1", headers=HEADERS, timeout=30)
        assistant = api.post("/assistants", json={"model": "fake-model"}).json()["id"]
        body = {"messages": [{"role": "user", "content": "slow please"}]}
        thread = api.post("/threads", json=body).json()["id"]
        run = api.post(f"/threads/{thread}/runs", json={"assistant_id": assistant}).json()["id"]
        wait_until(lambda: upstream.chat_requests())
        first.kill()
        subprocess.run(["chattr", "+i", *files], check=True)
        try:
            second = start_assistants(url, tmp_path / "second.log", env=env)
            try:
                api = httpx.Client(base_url=f"{second.base_url}/v1", headers=HEADERS, timeout=30)
                time.sleep(3)  # leases lapsed long ago; maintenance ran several times
                assert api.get(f"/threads/{thread}/runs/{run}").status_code == 503
                assert httpx.get(f"{second.base_url}/health").status_code == 503
                assert "recovered run" not in second.log()
                subprocess.run(["chattr", "-i", *files], check=True)
                done = wait_until(
                    lambda: (
                        (r := api.get(f"/threads/{thread}/runs/{run}")).status_code == 200
                        and r.json()["status"] == "completed"
                        and r
                    ),
                    timeout=30,
                )
                assert done.json()["status"] == "completed"
                assert f"recovered run {run} (lease lapsed): now queued" in second.log()
                assert second.proc.poll() is None
            finally:
                second.stop()
        finally:
            subprocess.run(["chattr", "-i", *files], check=False)


def test_a_response_that_cannot_be_stored_is_refused_not_answered(tmp_path: Path) -> None:
    """A stored response is written while the upstream is asked: when the write fails,
    the request is a 503, nothing of the answer is relayed, and the upstream is let go."""
    database = tmp_path / "assistants.db"
    url = f"sqlite:///{database}"
    files = [str(database), f"{database}-wal", f"{database}-shm"]
    script = [{"match": "stored", "text": "An answer.", "repeat": True, "delay": 0.5}]
    with run_openai_upstream(script) as upstream:
        migrate(url)
        env = {"SOVEREIGN_PLAYGROUND_URL": upstream.url}
        service = start_assistants(url, tmp_path / "log", env=env)
        api = httpx.Client(base_url=f"{service.base_url}/v1", headers=HEADERS, timeout=30)
        try:
            before = api.post("/responses", json={"model": "m", "input": "stored?"})
            assert before.status_code == 200 and before.json()["status"] == "completed"
            subprocess.run(["chattr", "+i", *files], check=True)
            asked = len(upstream.requests())
            try:
                for stream in (False, True):
                    body = {"model": "m", "input": "stored?", "stream": stream}
                    refused = api.post("/responses", json=body)
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["error"]["code"] == "database_unavailable"
                    assert "event:" not in refused.text
                time.sleep(1)
                during = upstream.requests()[asked:]
                assert all(r.get("cancelled") for r in during), during
            finally:
                subprocess.run(["chattr", "-i", *files], check=False)
            after = wait_until(
                lambda: (
                    (
                        r := api.post("/responses", json={"model": "m", "input": "stored?"})
                    ).status_code
                    == 200
                    and r
                ),
                timeout=15,
            )
            stored = api.get(f"/responses/{after.json()['id']}")
            assert stored.json()["output"][0]["content"][0]["text"] == "An answer."
            assert service.proc.poll() is None, service.log()
        finally:
            service.stop()
