"""Fixtures for the playground's browser tests: the service, a scripted upstream and Chromium.

The system's Chromium (Debian's ``chromium`` package) is driven by Playwright; no browser is
downloaded. The page knows nothing of the database behind the API, so these run on SQLite.
Screenshots of the main views go to ``tests/playground/screenshots/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.process import FakeUpstream
from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

CHROMIUM = Path(os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
KEY = "test-key"
SERVICE_ENV = {
    "UPSTREAM_CONNECT_TIMEOUT": "5",
    "UPSTREAM_FIRST_TOKEN_TIMEOUT": "20",
    "UPSTREAM_IDLE_TIMEOUT": "20",
    "RUN_LEASE_SECONDS": "3",
    "RUN_POLL_SECONDS": "0.2",
}


@pytest.fixture(scope="module")
def upstream(request: pytest.FixtureRequest) -> Iterator[FakeUpstream]:
    """The module's scripted upstream (its ``SCRIPT``)."""
    with run_openai_upstream(getattr(request.module, "SCRIPT", [])) as fake:
        yield fake


@pytest.fixture(scope="module")
def service(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    database = sqlite_url(tmp_path_factory.mktemp("sqlite"))
    log = tmp_path_factory.mktemp("logs") / "assistants.log"
    env = {**SERVICE_ENV, "SOVEREIGN_PLAYGROUND_URL": upstream.url}
    with run_assistants(database, log, env=env) as svc:
        yield svc


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, service: ServiceProcess) -> Iterator[Any]:
    """A fresh browser context (its own sessionStorage) on the service's origin."""
    context = browser.new_context(
        base_url=service.base_url, viewport={"width": 1400, "height": 900}
    )
    context.set_default_timeout(15000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, errors


def shoot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def connect(page: Any, key: str = KEY, *, refused: bool = False) -> None:
    """Open /playground and connect with ``key``, as a person would; wait until the page
    says it is connected (or, with ``refused``, that the key was refused)."""
    page.goto("/playground")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Connect").click()
    status = page.locator("#connect-status")
    if refused:
        expect(status).to_contain_text("Refused")
    else:
        expect(status).to_have_text("Connected.")


def new_thread(page: Any) -> str:
    """Click "New thread" and wait until the page has it open; its id."""
    threads = page.get_by_label("Thread", exact=True)
    before = threads.input_value()
    page.get_by_role("button", name="New thread").click()
    page.wait_for_function(
        "before => document.getElementById('thread').value.startsWith('thread_')"
        " && document.getElementById('thread').value !== before",
        arg=before,
    )
    return threads.input_value()
