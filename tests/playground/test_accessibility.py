"""Every control of the playground has an accessible name (axe-core run in the page), in light
and dark, and the page reads on a narrow window without sideways scrolling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.playground.conftest import KEY, connect, new_thread, shoot
from tests.support.processes import ServiceProcess

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SCRIPT = {
    "models": ["fake-model"],
    "responses": [
        {"match": "hello", "text": "Hello to you.", "chunks": 3, "repeat": True},
        {
            "match": "weather",
            "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
            "repeat": True,
        },
    ],
}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
# WCAG 2 A and AA as axe checks them: names and labels of controls, images, links, contrast.
RUN_AXE = """async () => {
  const only = { type: "tag", values: ["wcag2a", "wcag2aa"] };
  const result = await axe.run(document, { runOnly: only });
  return result.violations.map((v) => ({
    id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")),
  }));
}"""


def audit(page: Any) -> list[dict[str, Any]]:
    # Injected over the debugging protocol, so the page's own CSP stays as it is served.
    page.evaluate(AXE.read_text())
    return page.evaluate(RUN_AXE)


@pytest.fixture
def busy_page(page: Any, service: ServiceProcess) -> Any:
    """The page with an assistant, a conversation and a run waiting for a tool output."""
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"model": "fake-model", "name": "Audited", "tools": [TOOL]}
    httpx.post(f"{service.base_url}/v1/assistants", json=body, headers=headers).raise_for_status()
    connect(page)
    expect(page.locator("#connect-status")).to_have_text("Connected.")
    page.get_by_label("Assistant", exact=True).select_option(label="Audited")
    new_thread(page)
    box = page.get_by_role("textbox", name="Message")
    box.fill("hello")
    box.press("Enter")
    expect(page.get_by_role("log", name="Conversation")).to_contain_text("Hello to you.")
    expect(page.get_by_role("status", name="Run status")).to_contain_text("completed")
    box.fill("weather please")
    box.press("Enter")
    expect(page.get_by_role("form", name="Tool outputs")).to_be_visible()
    expect(page.get_by_role("region", name="Run steps").locator(".step")).to_have_count(1)
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_controls_have_names_and_pass_axe(busy_page: Any, scheme: str) -> None:
    busy_page.emulate_media(color_scheme=scheme)
    violations = audit(busy_page)
    assert not violations, violations
    shoot(busy_page, f"overview-{scheme}")
    # Every form control also has a name in the accessibility tree, checked directly.
    unnamed = busy_page.evaluate(
        """() => [...document.querySelectorAll("button, input, select, textarea")]
              .filter((el) => el.offsetParent !== null)
              .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                              && !(el.tagName === "BUTTON" && el.textContent.trim()))
              .map((el) => el.outerHTML)"""
    )
    assert not unnamed, unnamed


def test_the_key_screen_passes_axe(page: Any) -> None:
    page.goto("/playground")
    expect(page.get_by_role("button", name="Connect")).to_be_enabled()
    assert not audit(page)


def test_a_narrow_window_does_not_scroll_sideways(busy_page: Any) -> None:
    busy_page.set_viewport_size({"width": 390, "height": 844})
    busy_page.emulate_media(color_scheme="dark")
    overflow = busy_page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    # On a phone the conversation comes first.
    chat = busy_page.get_by_role("log", name="Conversation").bounding_box()
    assistants = busy_page.get_by_label("Assistant", exact=True).bounding_box()
    assert chat["y"] < assistants["y"]
    shoot(busy_page, "narrow-dark")
