"""Response models of the Responses and Conversations routes, for /openapi.json.

The routes answer with the dicts ``objects`` shapes (tests check those against OpenAI's
reference); these models document them, open to the fields OpenAI adds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ConversationObject",
    "InputTokensObject",
    "ItemList",
    "ItemObject",
    "ResponseObject",
]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResponseObject(_Open):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: str
    model: str
    output: list[dict[str, Any]]
    metadata: dict[str, str]


class ConversationObject(_Open):
    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str]


class ItemObject(_Open):
    id: str
    type: str


class ItemList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ItemObject]
    first_id: str | None
    last_id: str | None
    has_more: bool


class InputTokensObject(BaseModel):
    object: Literal["response.input_tokens"] = "response.input_tokens"
    input_tokens: int
