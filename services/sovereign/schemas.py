"""The request shapes sovereign checks before routing; bodies are forwarded as sent."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChatCompletionRequest", "EmbeddingRequest"]


class ChatCompletionRequest(BaseModel):
    # Unknown fields are allowed: they are forwarded to OpenAI-compatible backends.
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    n: int | None = Field(None, ge=1, le=1)  # one choice: local runtimes generate one
    tools: list[dict[str, Any]] | None = None
    stream_options: dict[str, Any] | None = None


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any]
    encoding_format: str | None = None
