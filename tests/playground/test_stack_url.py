"""`stack up` and `stack status` name the playground's URL under their table."""

from __future__ import annotations

from rich.console import Console

from stack.render import status_table


def render(status: dict) -> str:
    console = Console(width=200, record=True)
    console.print(status_table(status))
    return console.export_text()


def test_the_table_names_the_playground_url() -> None:
    status = {
        "phase": "up",
        "services": {
            "sovereign": {"state": "healthy", "url": "http://127.0.0.1:8080", "port": 8080},
            "assistants": {"state": "healthy", "url": "http://127.0.0.1:8001", "port": 8001},
        },
    }
    assert "playground: http://127.0.0.1:8001/playground" in render(status)


def test_no_url_before_the_assistants_service_has_one() -> None:
    status = {"phase": "starting", "services": {"assistants": {"state": "pending"}}}
    assert "playground" not in render(status)
