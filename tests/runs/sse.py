"""Reading SSE streams in tests, and the event orders of the reference's streaming examples."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx

from tests.support.openapi import _reference_path, assert_matches

DELTAS = ("thread.message.delta", "thread.run.step.delta")


def read_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """Every ``event:``/``data:`` pair of a streamed response, data parsed as JSON."""
    events: list[tuple[str, Any]] = []
    name = None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            raw = line[5:].strip()
            assert name is not None, f"data without an event line: {raw[:80]}"
            events.append((name, raw if raw == "[DONE]" else json.loads(raw)))
            name = None
    return events


def stream_events(base_url: str, path: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """POST ``body`` with ``stream: true`` to ``base_url/v1/path`` and read the whole stream."""
    with httpx.stream(
        "POST",
        f"{base_url}/v1/{path.lstrip('/')}",
        headers={"Authorization": "Bearer test-key"},
        json={**body, "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return read_events(response)


def collapse(names: list[str]) -> list[str]:
    """Event names with each run of identical delta events folded into one."""
    out: list[str] = []
    for name in names:
        if name in DELTAS and out and out[-1] == name:
            continue
        out.append(name)
    return out


@cache
def reference_order(path: str) -> list[str]:
    """The collapsed event order of the streaming example documented for ``POST path``."""
    document = json.loads(_reference_path().read_text())
    examples = document["paths"][path]["post"]["x-oaiMeta"]["examples"]
    for example in examples if isinstance(examples, list) else [examples]:
        text = example.get("response", "")
        if "event:" in text:
            names = [ln[6:].strip() for ln in text.splitlines() if ln.startswith("event:")]
            return collapse(names)
    raise LookupError(f"no streaming example for {path}")


SCHEMA_OF_EVENT = {
    "thread.created": "ThreadObject",
    "thread.run.step.delta": "RunStepDeltaObject",
    "thread.message.delta": "MessageDeltaObject",
}


def assert_event_shapes(events: list[tuple[str, Any]]) -> None:
    """Every event's data fits the reference schema its name announces."""
    for name, data in events:
        if name == "done":
            assert data == "[DONE]"
            continue
        schema = SCHEMA_OF_EVENT.get(name)
        if schema is None:
            if name.startswith("thread.run.step."):
                schema = "RunStepObject"
            elif name.startswith("thread.run."):
                schema = "RunObject"
            elif name.startswith("thread.message."):
                schema = "MessageObject"
            else:
                continue
        assert_matches(schema, data)
