"""Fresh databases for tests: a SQLite file, or a new database on the PostgreSQL under test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def postgres_admin_url() -> str | None:
    """TEST_DATABASE_URL when set; only loopback servers are ever used."""
    raw = os.environ.get("TEST_DATABASE_URL")
    if not raw:
        return None
    url = make_url(raw)
    if url.host not in LOOPBACK:
        raise RuntimeError(f"TEST_DATABASE_URL must point at loopback, not {url.host!r}")
    return raw


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test module; dropped afterwards. Without
    TEST_DATABASE_URL, the test asking for it is skipped."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip("TEST_DATABASE_URL is not set: no PostgreSQL to test against")
    url = make_url(admin)
    name = f"assistants_test_{uuid.uuid4().hex[:12]}"
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'assistants.db'}"
