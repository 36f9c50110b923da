"""What a backend's stream is reduced to, whatever its wire format: small typed events.

A backend's event iterator returns normally only when the upstream ended its stream
properly (`[DONE]`, or Ollama's `done: true`); every other ending raises an UpstreamError.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ContentDelta", "Event", "Finish", "ToolCallDelta", "Usage"]


@dataclass(slots=True, frozen=True)
class ContentDelta:
    text: str


@dataclass(slots=True, frozen=True)
class ToolCallDelta:
    """A fragment of a tool call; `index` may be None when the upstream leaves it out."""

    index: int | None
    id: str | None
    name: str | None
    arguments: str


@dataclass(slots=True, frozen=True)
class Finish:
    reason: str | None


@dataclass(slots=True, frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


Event = ContentDelta | ToolCallDelta | Finish | Usage
