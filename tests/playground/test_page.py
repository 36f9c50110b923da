"""The playground's page, assets and model list over HTTP, and connecting with the key.

Nothing the page serves carries data; the model list needs the key like every /v1 route.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.fakes.process import FakeUpstream
from tests.playground.conftest import KEY, connect, shoot
from tests.support.processes import ServiceProcess

SCRIPT = {"responses": [], "models": ["fake-model", "fake-model-large"]}


def test_page_and_assets_are_static_and_local(service: ServiceProcess) -> None:
    page = httpx.get(f"{service.base_url}/playground")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    # Every asset the page names is served here (no CDN), with its type and an ETag.
    assets = re.findall(r'(?:href|src)="(/playground/static/[^"]+)"', page.text)
    assert "/playground/static/js/app.js" in assets and len(assets) >= 9
    for asset in assets:
        served = httpx.get(f"{service.base_url}{asset}")
        kind = "text/css" if asset.endswith(".css") else "text/javascript"
        assert served.status_code == 200 and served.headers["content-type"].startswith(kind)
        again = httpx.get(
            f"{service.base_url}{asset}", headers={"If-None-Match": served.headers["etag"]}
        )
        assert again.status_code == 304
        assert "http://" not in served.text and "https://" not in served.text, asset
    assert "http://" not in page.text and "https://" not in page.text
    for missing in ("nope.js", "../page.py", "..%2Fpage.py", "%2e%2e/__init__.py"):
        response = httpx.get(f"{service.base_url}/playground/static/{missing}")
        assert response.status_code == 404, missing
        assert response.json()["error"]["type"] == "invalid_request_error"
    slash = httpx.get(f"{service.base_url}/playground/", follow_redirects=False)
    assert slash.status_code == 308 and slash.headers["location"] == "/playground"


def test_models_are_the_upstreams_behind_the_key(
    service: ServiceProcess, upstream: FakeUpstream
) -> None:
    url = f"{service.base_url}/v1/models"
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    body = httpx.get(url, headers={"X-API-Key": KEY}).json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["fake-model", "fake-model-large"]
    assert any(r["path"] == "/v1/models" for r in upstream.requests())


def test_models_upstream_down_is_a_502(tmp_path: Any) -> None:
    from tests.support.databases import sqlite_url
    from tests.support.processes import run_assistants

    with run_assistants(sqlite_url(tmp_path), tmp_path / "log") as svc:  # upstream: port 9
        response = httpx.get(f"{svc.base_url}/v1/models", headers={"X-API-Key": KEY})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "server_error"


def test_wrong_key_is_refused_and_the_right_one_kept_for_the_session(page: Any) -> None:
    connect(page, "wrong-key", refused=True)
    status = page.locator("#connect-status")
    expect(status).to_contain_text("Refused")
    expect(page.get_by_role("combobox", name="Assistant")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('playground.api-key')") is None
    shoot(page, "refused")

    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Connect").click()
    expect(status).to_have_text("Connected.")
    expect(page.get_by_role("combobox", name="Assistant")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('playground.api-key')") == KEY
    assert page.evaluate("localStorage.getItem('playground.api-key')") is None
    # A reload in the same session reconnects by itself.
    page.reload()
    expect(page.get_by_role("combobox", name="Assistant")).to_be_visible()
    page.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("combobox", name="Assistant")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('playground.api-key')") is None


def test_health_panel_shows_the_service_and_upstream(page: Any) -> None:
    page.goto("/playground")
    health = page.get_by_role("region", name="Health")
    expect(health).to_contain_text("service: healthy")
    expect(health).to_contain_text("upstream: healthy")


def test_the_health_panel_is_refreshed(browser: Any, tmp_path: Any) -> None:
    from tests.fakes.openai_upstream import run_openai_upstream
    from tests.support.databases import sqlite_url
    from tests.support.processes import run_assistants

    with run_openai_upstream([]) as fake:
        env = {"SOVEREIGN_PLAYGROUND_URL": fake.url}
        with run_assistants(sqlite_url(tmp_path), tmp_path / "log", env=env) as svc:
            context = browser.new_context(base_url=svc.base_url)
            page = context.new_page()
            page.clock.install()
            page.goto("/playground")
            upstream = page.get_by_role("region", name="Health").locator("#health-upstream")
            expect(upstream).to_contain_text("upstream: healthy")
            fake.stop()
            page.clock.run_for(10_500)
            expect(upstream).to_contain_text("upstream: unhealthy")
            context.close()


def test_time_to_interactive(page: Any, capsys: Any) -> None:
    samples = []
    for _ in range(5):
        page.goto("/playground")
        page.wait_for_function("() => document.documentElement.dataset.ready === 'true'")
        samples.append(
            page.evaluate("performance.getEntriesByName('playground-interactive')[0].startTime")
        )
    samples.sort()
    with capsys.disabled():
        print(
            f"\n/playground time to interactive: median {samples[2]:.0f} ms "
            f"(min {samples[0]:.0f}, max {samples[-1]:.0f}; target < 300 ms)"
        )
