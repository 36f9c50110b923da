"""Request bodies of the Responses and Conversations APIs (OpenAI's field names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..schemas.common import Metadata, Request

__all__ = [
    "ConversationCreate",
    "ConversationItemsCreate",
    "ConversationUpdate",
    "InputTokensBody",
    "ResponseCreate",
]

Input = str | list[dict[str, Any]]


class ConversationRef(Request):
    id: str


class _ModelInput(Request):
    """What a response's prompt is built from; shared by create and input_tokens."""

    model: str | None = Field(default=None, max_length=256)
    input: Input | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | ConversationRef | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    reasoning: dict[str, Any] | None = None

    def conversation_id(self) -> str | None:
        if isinstance(self.conversation, ConversationRef):
            return self.conversation.id
        return self.conversation


class ResponseCreate(_ModelInput):
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    metadata: Metadata | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    include: list[str] | None = None
    user: str | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    # Accepted so that the refusal can name them (see ``UNSUPPORTED_FIELDS``).
    prompt: dict[str, Any] | None = None
    context_management: Any = None
    background_options: Any = None
    moderation: Any = None
    image: Any = None
    access_programs: Any = None
    prompt_cache_options: Any = None


class InputTokensBody(_ModelInput):
    pass


class ConversationCreate(Request):
    items: list[dict[str, Any]] | None = Field(default=None, max_length=20)
    metadata: Metadata | None = None


class ConversationUpdate(Request):
    metadata: Metadata


class ConversationItemsCreate(Request):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=20)
