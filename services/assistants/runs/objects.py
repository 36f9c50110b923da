"""Rows a run's execution creates, and the usage totals it keeps."""

from __future__ import annotations

from typing import Any

from ..clock import now
from ..ids import new_id
from ..tables import Message, Run, RunStep

__all__ = ["add_usage", "message_rows", "new_step"]


def add_usage(total: dict[str, int] | None, more: dict[str, Any] | None) -> dict[str, int] | None:
    if not more:
        return total
    out = dict(total or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        out[key] = out.get(key, 0) + int(more.get(key) or 0)
    return out


def new_step(run: Run, kind: str, details: dict[str, Any]) -> RunStep:
    return RunStep(
        id=new_id("step_"),
        created_at=now(),
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        type=kind,
        status="in_progress",
        step_details=details,
        metadata_={},
    )


def message_rows(run: Run) -> tuple[Message, RunStep]:
    """An empty in-progress assistant message and the message_creation step that makes it."""
    message = Message(
        id=new_id("msg_"),
        thread_id=run.thread_id,
        created_at=now(),
        role="assistant",
        content=[],
        status="in_progress",
        assistant_id=run.assistant_id,
        run_id=run.id,
        attachments=[],
        metadata_={},
    )
    details = {"type": "message_creation", "message_creation": {"message_id": message.id}}
    return message, new_step(run, "message_creation", details)
