"""How the page renders OpenAI's message shapes: file_citation annotations become numbered
footnotes named after the file, file_path annotations links to the content, image_file parts
images. The page's own modules run in Chromium against the real service and its /v1/files.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.playground.conftest import KEY, connect
from tests.support.processes import ServiceProcess

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


HEADERS = {"Authorization": f"Bearer {KEY}"}


def png(width: int = 4, height: int = 3) -> bytes:
    """A small, valid red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def upload(service: ServiceProcess, name: str, content: bytes, purpose: str = "assistants") -> str:
    response = httpx.post(
        f"{service.base_url}/v1/files",
        headers=HEADERS,
        data={"purpose": purpose},
        files={"file": (name, content)},
    )
    response.raise_for_status()
    return response.json()["id"]


def cited_message(weather: str, climate: str, chart: str, plot: str) -> dict[str, Any]:
    # The markers' names differ from the files' own: the footnotes must show the latter.
    first, second = "【4:0†w.txt】", "【4:1†c.md】"
    value = f"Paris is sunny{first} and warm{second}; see the chart."
    annotations = [
        {
            "type": "file_citation",
            "text": marker,
            "start_index": value.index(marker),
            "end_index": value.index(marker) + len(marker),
            "file_citation": {"file_id": file_id},
        }
        for marker, file_id in ((first, weather), (second, climate))
    ]
    annotations.append(
        {
            "type": "file_path",
            "text": "the chart",
            "start_index": value.index("the chart"),
            "end_index": value.index("the chart") + len("the chart"),
            "file_path": {"file_id": chart},
        }
    )
    return {
        "id": "msg_rendered",
        "role": "assistant",
        "content": [
            {"type": "text", "text": {"value": value, "annotations": annotations}},
            {"type": "image_file", "image_file": {"file_id": plot}},
        ],
    }


def test_citations_footnotes_links_and_images(page: Any, service: ServiceProcess) -> None:
    weather = upload(service, "weather.txt", b"Sunny and 21 degrees.")
    climate = upload(service, "climate.md", b"# Warm summers")
    chart = upload(service, "chart.csv", b"day,celsius\nmon,21\n")
    plot = upload(service, "plot.png", png(), purpose="vision")
    page.goto("/playground")
    expect(page.get_by_role("button", name="Connect")).to_be_enabled()
    page.evaluate(RENDER, [KEY, cited_message(weather, climate, chart, plot)])
    message = page.locator("#rendered")
    text = message.locator(".text")
    expect(text).to_have_text("Paris is sunny[1] and warm[2]; see the chart.")
    expect(text.get_by_role("link", name="[1]")).to_have_attribute("href", "#fn-msg_rendered-1")
    notes = message.get_by_role("list", name="Citations").locator("li")
    expect(notes).to_have_text(["weather.txt", "climate.md"])
    expect(notes.nth(0)).to_have_attribute("id", "fn-msg_rendered-1")
    # A file link fetches the content with the key, and the browser saves it.
    with page.expect_download() as download:
        notes.nth(0).get_by_role("link").click()
    assert download.value.suggested_filename == "weather.txt"
    assert Path(download.value.path()).read_bytes() == b"Sunny and 21 degrees."
    with page.expect_download() as download:
        text.get_by_role("link", name="the chart").click()
    assert Path(download.value.path()).read_bytes() == b"day,celsius\nmon,21\n"
    image = message.get_by_role("img")
    expect(image).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("() => document.querySelector('#rendered img').naturalWidth === 4")


def test_a_missing_file_falls_back_to_the_markers_name(page: Any) -> None:
    page.goto("/playground")
    expect(page.get_by_role("button", name="Connect")).to_be_enabled()
    page.evaluate(RENDER, [KEY, cited_message("file-gone", "file-gone2", "file-x", "file-y")])
    message = page.locator("#rendered")
    notes = message.get_by_role("list", name="Citations").locator("li")
    expect(notes).to_have_text(["w.txt", "c.md"])
    image = message.get_by_role("img")
    expect(image).to_have_attribute("alt", re.compile(r"^Image file-y could not be loaded: "))


def test_an_image_in_a_thread_shows_inline(page: Any, service: ServiceProcess) -> None:
    plot = upload(service, "inline.png", png(6, 2), purpose="vision")
    content = [
        {"type": "text", "text": "Here is the plot."},
        {"type": "image_file", "image_file": {"file_id": plot}},
    ]
    thread = httpx.post(
        f"{service.base_url}/v1/threads",
        headers=HEADERS,
        json={"messages": [{"role": "user", "content": content}]},
    ).json()
    page.goto("/playground")
    remembered = [{"id": thread["id"], "created_at": thread["created_at"]}]
    page.evaluate("t => localStorage.setItem('playground.threads', JSON.stringify(t))", remembered)
    connect(page)
    conversation = page.get_by_role("log", name="Conversation")
    expect(conversation).to_contain_text("Here is the plot.")
    expect(conversation.get_by_role("img")).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("() => document.querySelector('#conversation img').naturalWidth === 6")


INSPECT = """async ([key, run, steps]) => {
  const { Api } = await import("/playground/static/js/api.js");
  const { Inspector } = await import("/playground/static/js/inspector.js");
  const inspector = new Inspector({ api: new Api(key) });
  document.getElementById("workspace").hidden = false;
  inspector.render(run, steps);
}"""


def test_the_inspector_shows_code_logs_images_search_scores_and_errors(
    page: Any, service: ServiceProcess
) -> None:
    plot = upload(service, "steps.png", png(5, 5), purpose="vision")
    run = {
        "id": "run_shown",
        "status": "failed",
        "model": "fake-model",
        "created_at": 1_700_000_000,
        "started_at": 1_700_000_001,
        "failed_at": 1_700_000_004,
        "usage": {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42},
        "last_error": {"code": "rate_limit_exceeded", "message": "Slow down."},
        "incomplete_details": None,
    }
    search = {
        "id": "call_search",
        "type": "file_search",
        "file_search": {
            "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
            "results": [
                {
                    "file_id": "file-a",
                    "file_name": "manual.pdf",
                    "score": 0.91234,
                    "content": [{"type": "text", "text": "Press the red button."}],
                }
            ],
        },
    }
    code = {
        "id": "call_code",
        "type": "code_interpreter",
        "code_interpreter": {
            "input": "print(6 * 7)",
            "outputs": [
                {"type": "logs", "logs": "42\n"},
                {"type": "image", "image": {"file_id": plot}},
            ],
        },
    }
    step = {
        "id": "step_tools",
        "status": "completed",
        "created_at": 1_700_000_001,
        "completed_at": 1_700_000_003,
        "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31},
        "last_error": None,
        "step_details": {"type": "tool_calls", "tool_calls": [search, code]},
    }
    page.goto("/playground")
    expect(page.get_by_role("button", name="Connect")).to_be_enabled()
    page.evaluate(INSPECT, [KEY, run, [step]])
    steps = page.get_by_role("region", name="Run steps")
    header = steps.locator(".run-header")
    expect(header).to_contain_text("Too many requests reached the model: Slow down.")
    expect(header).to_contain_text("queued → started 1 s, ran 3 s")
    expect(header).to_contain_text("usage: 40 prompt + 2 completion = 42 tokens")
    shown = steps.locator(".step")
    expect(shown).to_contain_text("took 2 s")
    results = shown.get_by_role("list", name="Search results")
    expect(results).to_contain_text("score 0.912")
    expect(results).to_contain_text("manual.pdf")
    expect(results).to_contain_text("Press the red button.")
    expect(shown.get_by_label("Code")).to_have_text("print(6 * 7)")
    expect(shown.get_by_label("Logs")).to_have_text("42\n")
    page.wait_for_function("() => document.querySelector('#run-steps img').naturalWidth === 5")
