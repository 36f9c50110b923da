"""The service process at its edges: bad settings, relative SQLite paths, schema and DB outages."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.openapi import assert_matches
from tests.support.processes import (
    PROJECT_ROOT,
    free_port,
    migrate,
    start_assistants,
    wait_http,
    wait_until,
)

HEADERS = {"X-API-Key": "test-key"}


BAD_SETTINGS = [
    ({"DATABASE_URL": "garbage"}, "not a database URL"),
    ({"DATABASE_URL": "mysql://root@127.0.0.1/db"}, "supported databases are sqlite"),
    ({"DATABASE_URL": "sqlite://"}, "names no SQLite file"),
    ({"DATABASE_URL": "sqlite:///:memory:"}, "names no SQLite file"),
    ({"DATABASE_URL": "sqlite:////proc/no-such-dir/a.db"}, "cannot create /proc/no-such-dir"),
    ({"API_PORT": "eighty"}, "API_PORT"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
]


def test_bad_settings_are_one_line(tmp_path: Path) -> None:
    # All at once: each process spends its time importing, not failing.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.assistants"],
            env={**os.environ, "API_PORT": str(free_port()), **env},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env, _ in BAD_SETTINGS
    ]
    for proc, (env, says) in zip(procs, BAD_SETTINGS, strict=True):
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, (env, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (
            env,
            stderr,
        )
        assert "Traceback" not in stdout + stderr


def _remove_stale_test_folders() -> None:
    # A run killed mid-test cannot clean up after itself; an hour-old folder is nobody's.
    for stale in PROJECT_ROOT.glob(".test-data-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


def test_relative_sqlite_path_resolves_against_the_project(tmp_path: Path) -> None:
    _remove_stale_test_folders()
    folder = f".test-data-{uuid.uuid4().hex[:8]}"
    relative = f"sqlite:///{folder}/nested/assistants.db"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": relative,
        "API_PORT": str(port),
        "SOVEREIGN_PLAYGROUND_URL": "http://127.0.0.1:9",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.assistants"],
        cwd=tmp_path,  # not the project root: the path must not follow the working directory
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc)
        assert (PROJECT_ROOT / folder / "nested").is_dir()
        assert not (tmp_path / folder).exists()
        # Alembic, run from elsewhere too, migrates the same file; the service then serves.
        subprocess.run(
            [
                sys.executable,
                "-m",
                "alembic",
                "-c",
                str(PROJECT_ROOT / "alembic.ini"),
                "upgrade",
                "head",
            ],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        assert (PROJECT_ROOT / folder / "nested" / "assistants.db").is_file()
        url = f"http://127.0.0.1:{port}/v1/assistants"
        wait_until(lambda: httpx.post(url, headers=HEADERS, json={"model": "m"}).is_success)
    finally:
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(PROJECT_ROOT / folder, ignore_errors=True)


def test_database_behind_head_is_refused_until_migrated(database_url: str, tmp_path: Path) -> None:
    service = start_assistants(database_url, tmp_path / "log")
    try:
        health = httpx.get(f"{service.base_url}/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert "alembic upgrade head" in health.json()["checks"]["database"]["error"]
        refused = httpx.get(f"{service.base_url}/v1/assistants", headers=HEADERS)
        assert refused.status_code == 503
        assert_matches("ErrorResponse", refused.json())
        assert "alembic upgrade head" in refused.json()["error"]["message"]
        assert refused.json()["error"]["code"] == "database_not_migrated"

        migrate(database_url)
        url = f"{service.base_url}/v1/assistants"
        wait_until(lambda: httpx.get(url, headers=HEADERS).status_code == 200)
        assert (
            httpx.get(f"{service.base_url}/health").json()["checks"]["database"]["status"]
            == "healthy"
        )
        assert service.proc.poll() is None
    finally:
        service.stop()


def test_unreachable_postgres_is_503(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here: connections are refused at once
    url = f"postgresql://postgres@127.0.0.1:{closed}/assistants"
    service = start_assistants(url, tmp_path / "log")
    try:
        health = httpx.get(f"{service.base_url}/health", timeout=30)
        assert health.status_code == 503
        database = health.json()["checks"]["database"]
        assert database["status"] == "unhealthy" and database["dialect"] == "postgresql"
        refused = httpx.get(f"{service.base_url}/v1/threads/thread_x", headers=HEADERS, timeout=30)
        assert refused.status_code == 503
        assert "unreachable" in refused.json()["error"]["message"]
        assert service.proc.poll() is None
    finally:
        service.stop()


def test_another_process_writing_holds_up_only_writers(tmp_path: Path) -> None:
    """While another process holds SQLite's write lock (a migration, a script), reads and
    /health still answer; writes, through Core statements and through the ORM, wait for the
    lock and then succeed."""
    database = tmp_path / "assistants.db"
    url = f"sqlite:///{database}"
    migrate(url)
    service = start_assistants(url, tmp_path / "service.log")
    try:
        api = httpx.Client(base_url=f"{service.base_url}/v1", headers=HEADERS, timeout=20)
        thread = api.post("/threads").json()["id"]
        messages = f"/threads/{thread}/messages"
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(max_workers=2) as pool:
            writes = [
                pool.submit(api.post, messages, json={"role": "user", "content": "waited"}),
                pool.submit(api.post, "/threads", json={"metadata": {"k": "v"}}),
            ]
            # Reads go on while the writes wait (the event loop is not stuck in SQLite).
            assert wait_until(lambda: api.get(messages).status_code == 200)
            assert httpx.get(f"{service.base_url}/health", timeout=10).status_code == 200
            assert not any(write.done() for write in writes), [w.result() for w in writes]
            other.execute("COMMIT")
            statuses = [write.result(timeout=20).status_code for write in writes]
        other.close()
        assert statuses == [200, 200]
        assert [m["content"][0]["text"]["value"] for m in api.get(messages).json()["data"]] == [
            "waited"
        ]
    finally:
        service.stop()
