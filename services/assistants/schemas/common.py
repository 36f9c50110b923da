"""Shapes shared by every resource: metadata, tools, response formats, lists, deletions."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# OpenAI's limits: a message's text and instructions 256,000 characters, an assistant's
# tools 128, a run's tools (which override them) 20.
MAX_TEXT = 256_000
MAX_ASSISTANT_TOOLS = 128
MAX_RUN_TOOLS = 20

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


def _check_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(f"at most {MAX_METADATA_PAIRS} key-value pairs are allowed")
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(f"key {key[:20]!r}… is longer than {MAX_METADATA_KEY} characters")
        if len(item) > MAX_METADATA_VALUE:
            raise ValueError(f"value of {key!r} is longer than {MAX_METADATA_VALUE} characters")
    return value


Metadata = Annotated[dict[str, str], AfterValidator(_check_metadata)]


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text may not contain NUL (\\u0000) characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _without_nul(key)
            _without_nul(item)
    elif isinstance(value, list):
        for item in value:
            _without_nul(item)
    return value


class Request(BaseModel):
    """Request bodies reject unknown fields, as OpenAI's API does, and take JSON's types as
    they are (strict): ``true`` is not a number, ``"0.5"`` not a float, ``1`` not a boolean.

    They also reject NUL characters anywhere in their text: PostgreSQL cannot store them,
    and one database should not accept what the other refuses.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _without_nul(value)


class FunctionDefinition(Request):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionTool(Request):
    type: Literal["function"]
    function: FunctionDefinition


class CodeInterpreterTool(Request):
    type: Literal["code_interpreter"]


class FileSearchTool(Request):
    type: Literal["file_search"]
    file_search: dict[str, Any] | None = None


Tool = Annotated[FunctionTool | CodeInterpreterTool | FileSearchTool, Field(discriminator="type")]
Tools = Annotated[list[Tool], Field(max_length=MAX_ASSISTANT_TOOLS)]
RunTools = Annotated[list[Tool], Field(max_length=MAX_RUN_TOOLS)]


class JsonSchemaFormat(Request):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(Request):
    type: Literal["text"]


class JsonObjectFormat(Request):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(Request):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = (
    Literal["auto"]
    | Annotated[
        TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")
    ]
)


class CodeInterpreterResources(Request):
    file_ids: list[str] = Field(default_factory=list, max_length=20)


class FileSearchResources(Request):
    vector_store_ids: list[str] = Field(default_factory=list, max_length=1)
    vector_stores: Annotated[list[dict[str, Any]], Field(max_length=1)] | None = None


class ToolResources(Request):
    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


def dump_tools(tools: list[Any]) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def dump_optional(value: Any) -> Any:
    """A request sub-object as stored JSON: models dumped, literals kept, None kept."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


class ListResponse(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool = True
