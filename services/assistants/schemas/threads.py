"""Thread and message objects, with their create and modify requests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from .common import MAX_TEXT, Metadata, Request, ToolResources


class TextPart(Request):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class ImageUrl(Request):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(Request):
    type: Literal["image_url"]
    image_url: ImageUrl


class ImageFile(Request):
    file_id: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImageFilePart(Request):
    type: Literal["image_file"]
    image_file: ImageFile


ContentPart = Annotated[TextPart | ImageUrlPart | ImageFilePart, Field(discriminator="type")]


class Attachment(Request):
    file_id: str
    tools: list[dict[str, Any]] | None = None


class MessageCreate(Request):
    role: Literal["user", "assistant"]
    content: (
        Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
        | Annotated[list[ContentPart], Field(min_length=1)]
    )
    attachments: list[Attachment] | None = None
    metadata: Metadata | None = None

    @field_validator("content", mode="after")
    @classmethod
    def _text_within_limit(cls, content: str | list[Any]) -> str | list[Any]:
        # The limit is on the message's text, however many parts carry it.
        if isinstance(content, list):
            total = sum(len(p.text) for p in content if isinstance(p, TextPart))
            if total > MAX_TEXT:
                raise ValueError(
                    f"the text of a message is at most {MAX_TEXT} characters (got {total})"
                )
        return content


class MessageModify(Request):
    metadata: Metadata | None = None


class ThreadCreate(Request):
    messages: Annotated[list[MessageCreate], Field(max_length=32)] | None = None
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


class ThreadModify(Request):
    tool_resources: ToolResources | None = None
    metadata: Metadata | None = None


class ThreadObject(BaseModel):
    id: str
    object: Literal["thread"] = "thread"
    created_at: int
    tool_resources: dict[str, Any] | None
    metadata: dict[str, str]


class MessageObject(BaseModel):
    id: str
    object: Literal["thread.message"] = "thread.message"
    created_at: int
    thread_id: str
    status: Literal["in_progress", "incomplete", "completed"]
    incomplete_details: dict[str, Any] | None
    completed_at: int | None
    incomplete_at: int | None
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]
    assistant_id: str | None
    run_id: str | None
    attachments: list[dict[str, Any]] | None
    metadata: dict[str, str]
