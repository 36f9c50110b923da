"""code_interpreter in the playground: the code, its logs and its figure in the run inspector,
the figure inline in the answer, and a file the code wrote linked to its content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.fakes import openai_upstream
from tests.playground.conftest import connect, new_thread, shoot

# The scripted upstream calls code_interpreter with the ```python block of the message, once
# the service has the tool.
if not hasattr(openai_upstream, "code_interpreter_reply"):
    pytest.skip("the service has no code_interpreter yet", allow_module_level=True)

SCRIPT: dict[str, Any] = {"models": ["fake-model"], "responses": []}
CODE = (
    "import matplotlib.pyplot as plt\n"
    "plt.plot([1, 2, 3], [1, 4, 9])\n"
    "open('/mnt/data/notes.txt', 'w').write('squares')\n"
    "print('drew the squares')\n"
)


def test_code_its_logs_its_figure_and_its_file(page: Any) -> None:
    connect(page)
    page.get_by_role("button", name="New assistant").click()
    page.get_by_label("Name", exact=True).fill("Calculator")
    page.get_by_label("code_interpreter").check()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#assistant-status")).to_have_text("Saved Calculator.")
    new_thread(page)
    page.get_by_role("textbox", name="Message").fill(f"Please run this:\n```python\n{CODE}```")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("status", name="Run status")).to_contain_text(
        "completed", timeout=60_000
    )

    answer = page.get_by_role("log", name="Conversation").locator(".msg.assistant").last
    expect(answer).to_contain_text("drew the squares")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#conversation .msg.assistant img')]"
        ".some((img) => img.naturalWidth > 100)"
    )
    with page.expect_download() as download:
        answer.get_by_role("link", name="notes.txt").click()
    assert download.value.suggested_filename == "notes.txt"
    assert Path(download.value.path()).read_bytes() == b"squares"

    steps = page.get_by_role("region", name="Run steps")
    expect(steps.get_by_label("Code")).to_contain_text("plt.plot([1, 2, 3], [1, 4, 9])")
    expect(steps.get_by_label("Logs")).to_contain_text("drew the squares")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#run-steps img')]"
        ".some((img) => img.naturalWidth > 100)"
    )
    shoot(page, "code-interpreter")
