"""Files in the playground: a vector store made on the page, files uploaded to it (the file
field and drag and drop) reaching `completed`, a file that cannot be read showing its error,
and an answer citing an uploaded file as a footnote with the file's name.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.playground.conftest import KEY, connect, new_thread, shoot
from tests.support.processes import ServiceProcess

MANUAL = b"To start the pump, press the red button and wait for the green lamp."
SCRIPT = {
    "models": ["fake-model"],
    "responses": [
        {"match": "pump", "text": "Press the red button [1].", "chunks": 3, "repeat": True},
    ],
}


@pytest.fixture(autouse=True)
def vector_stores(service: ServiceProcess) -> None:
    """These tests need the service's /v1/vector_stores."""
    response = httpx.get(f"{service.base_url}/v1/vector_stores", headers={"X-API-Key": KEY})
    if response.status_code == 404:
        pytest.skip("the service has no /v1/vector_stores yet")


DROP = """([name, text]) => {
  const data = new DataTransfer();
  data.items.add(new File([text], name, { type: "text/plain" }));
  const zone = document.getElementById("drop-zone");
  const init = { dataTransfer: data, bubbles: true, cancelable: true };
  zone.dispatchEvent(new DragEvent("dragover", init));
  zone.dispatchEvent(new DragEvent("drop", init));
}"""

# Notes whether a raw 【n†name】 marker is ever on screen while the answer streams.
WATCH_MARKERS = """() => {
  window.markerShown = false;
  const log = document.getElementById("conversation");
  new MutationObserver(() => {
    if (log.textContent.includes("\u3010")) window.markerShown = true;
  }).observe(log, { subtree: true, childList: true, characterData: true });
}"""


def make_store(page: Any, name: str) -> str:
    """Create a store on the page and wait until it is the one shown (an earlier test's
    store is already selected, so a vs_ value alone proves nothing)."""
    page.get_by_label("New vector store name").fill(name)
    page.get_by_role("button", name="Create vector store").click()
    expect(page.locator("#files-status")).to_have_text(f"Created vector store {name}.")
    store = page.get_by_label("Vector store", exact=True)
    expect(store.locator("option:checked")).to_have_text(name)
    return store.input_value()


def test_uploads_reach_completed(page: Any) -> None:
    connect(page)
    make_store(page, "Manuals")
    page.get_by_label("Upload files to the vector store").set_input_files(
        files=[{"name": "manual.txt", "mimeType": "text/plain", "buffer": MANUAL}]
    )
    files = page.get_by_role("list", name="Files in the vector store").locator("li")
    expect(files.nth(0)).to_contain_text("manual.txt")
    expect(files.nth(0)).to_have_attribute("data-status", "completed", timeout=60_000)
    page.evaluate(DROP, ["dropped.txt", "Dropped on the zone."])
    expect(files.nth(1)).to_contain_text("dropped.txt")
    expect(files.nth(1)).to_have_attribute("data-status", "completed", timeout=60_000)
    shoot(page, "files")


def test_a_file_that_cannot_be_read_shows_its_error(page: Any) -> None:
    connect(page)
    make_store(page, "Broken")
    page.get_by_label("Upload files to the vector store").set_input_files(
        files=[{"name": "broken.json", "mimeType": "application/json", "buffer": b"{not json"}]
    )
    row = page.get_by_role("list", name="Files in the vector store").locator("li").nth(0)
    expect(row).to_have_attribute("data-status", "failed", timeout=60_000)
    expect(row).to_contain_text("invalid_file: broken.json is not valid JSON")
    # Opening the store again lists the file with its status and error.
    page.reload()
    page.get_by_label("Vector store", exact=True).select_option(label="Broken")
    row = page.get_by_role("list", name="Files in the vector store").locator("li").nth(0)
    expect(row).to_contain_text("broken.json")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("invalid_file")


def test_an_answer_cites_an_uploaded_file(page: Any) -> None:
    connect(page)
    make_store(page, "Pump manuals")
    page.get_by_label("Upload files to the vector store").set_input_files(
        files=[{"name": "pump-manual.txt", "mimeType": "text/plain", "buffer": MANUAL}]
    )
    row = page.get_by_role("list", name="Files in the vector store").locator("li").nth(0)
    expect(row).to_have_attribute("data-status", "completed", timeout=60_000)

    page.get_by_role("button", name="New assistant").click()
    page.get_by_label("Name", exact=True).fill("Librarian")
    page.get_by_label("file_search", exact=True).check()
    page.get_by_label("Vector stores for file_search").select_option(label="Pump manuals")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#assistant-status")).to_have_text("Saved Librarian.")

    new_thread(page)
    page.evaluate(WATCH_MARKERS)
    box = page.get_by_role("textbox", name="Message")
    box.fill("How do I start the pump?")
    box.press("Enter")
    expect(page.get_by_role("status", name="Run status")).to_contain_text("completed")
    answer = page.get_by_role("log", name="Conversation").locator(".msg.assistant").last
    expect(answer.locator(".text")).to_have_text("Press the red button [1].")
    assert page.evaluate("window.markerShown") is False  # [n] while streaming too
    notes = answer.get_by_role("list", name="Citations").locator("li")
    expect(notes).to_have_text(["pump-manual.txt"])
    steps = page.get_by_role("region", name="Run steps")
    results = steps.get_by_role("list", name="Search results")
    expect(results).to_contain_text("pump-manual.txt")
    expect(results).to_contain_text("press the red button")
    expect(results).to_contain_text(re.compile(r"score \d\.\d{3}"))
    shoot(page, "citations")
