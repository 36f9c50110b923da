"""How the page renders OpenAI's message shapes: file_citation annotations become numbered
footnotes named after the file, file_path annotations links, image_file parts images.

The page's own modules run in Chromium against the real service; a file the service cannot
serve falls back to the name in the citation marker, and an image to words saying so.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.playground.conftest import KEY

SCRIPT: list[Any] = []
RENDER = """async ([key, message]) => {
  const { Api } = await import("/playground/static/js/api.js");
  const { FileNames, MessageView } = await import("/playground/static/js/render.js");
  const app = { api: new Api(key) };
  app.fileNames = new FileNames(app);
  const view = new MessageView(app, message);
  view.el.id = "rendered";
  document.body.append(view.el);
}"""


def cited_message() -> dict[str, Any]:
    first, second = "【4:0†weather.txt】", "【4:1†climate.md】"
    value = f"Paris is sunny{first} and warm{second}; see the chart."
    annotations = [
        {
            "type": "file_citation",
            "text": marker,
            "start_index": value.index(marker),
            "end_index": value.index(marker) + len(marker),
            "file_citation": {"file_id": file_id},
        }
        for marker, file_id in ((first, "file-weather"), (second, "file-climate"))
    ]
    annotations.append(
        {
            "type": "file_path",
            "text": "the chart",
            "start_index": value.index("the chart"),
            "end_index": value.index("the chart") + len("the chart"),
            "file_path": {"file_id": "file-chart"},
        }
    )
    return {
        "id": "msg_rendered",
        "role": "assistant",
        "content": [
            {"type": "text", "text": {"value": value, "annotations": annotations}},
            {"type": "image_file", "image_file": {"file_id": "file-plot"}},
        ],
    }


def test_citations_footnotes_links_and_images(page: Any) -> None:
    page.goto("/playground")
    expect(page.get_by_role("button", name="Connect")).to_be_enabled()
    page.evaluate(RENDER, [KEY, cited_message()])
    message = page.locator("#rendered")
    text = message.locator(".text")
    expect(text).to_have_text("Paris is sunny[1] and warm[2]; see the chart.")
    expect(text.get_by_role("link", name="[1]")).to_have_attribute("href", "#fn-msg_rendered-1")
    expect(text.get_by_role("link", name="the chart")).to_have_attribute(
        "data-file-id", "file-chart"
    )
    notes = message.get_by_role("list", name="Citations").locator("li")
    expect(notes).to_have_text(["weather.txt", "climate.md"])
    expect(notes.nth(0)).to_have_attribute("id", "fn-msg_rendered-1")
    expect(notes.nth(1).get_by_role("link")).to_have_attribute("data-file-id", "file-climate")
    # No such file on this service: the image says so in its alternative text.
    image = message.get_by_role("img")
    expect(image).to_have_attribute("alt", re.compile(r"^Image file-plot could not be loaded: "))
