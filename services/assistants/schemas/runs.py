"""Run and run-step shapes: create, thread-and-run, modify and submit_tool_outputs requests."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from .common import (
    MAX_TEXT,
    Metadata,
    ReasoningEffort,
    Request,
    ResponseFormat,
    RunTools,
    ToolResources,
)
from .threads import MessageCreate, ThreadCreate


class TruncationStrategy(Request):
    type: Literal["auto", "last_messages"]
    last_messages: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _needs_count(self) -> TruncationStrategy:
        if self.type == "last_messages" and self.last_messages is None:
            raise ValueError("last_messages is required when type is 'last_messages'")
        return self


class NamedFunction(Request):
    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(Request):
    type: Literal["function", "file_search", "code_interpreter"]
    function: NamedFunction | None = None

    @model_validator(mode="after")
    def _function_named(self) -> NamedToolChoice:
        if self.type == "function" and self.function is None:
            raise ValueError("function.name is required when type is 'function'")
        return self


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class RunParameters(Request):
    """What createRun and createThreadAndRun share."""

    assistant_id: str = Field(min_length=1)
    model: str | None = Field(default=None, min_length=1, max_length=256)
    instructions: str | None = Field(default=None, max_length=MAX_TEXT)
    tools: RunTools | None = None
    metadata: Metadata | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool | None = None
    max_prompt_tokens: int | None = Field(default=None, ge=256)
    max_completion_tokens: int | None = Field(default=None, ge=256)
    truncation_strategy: TruncationStrategy | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


class RunCreate(RunParameters):
    additional_instructions: str | None = Field(default=None, max_length=MAX_TEXT)
    additional_messages: Annotated[list[MessageCreate], Field(max_length=32)] | None = None


class ThreadAndRunCreate(RunParameters):
    thread: ThreadCreate | None = None
    tool_resources: ToolResources | None = None


class RunModify(Request):
    metadata: Metadata | None = None


class ToolOutput(Request):
    tool_call_id: str | None = None
    output: str | None = None


class SubmitToolOutputs(Request):
    tool_outputs: list[ToolOutput]
    stream: bool | None = None


class RunObject(BaseModel):
    id: str
    object: Literal["thread.run"] = "thread.run"
    created_at: int
    thread_id: str
    assistant_id: str
    status: str
    required_action: dict[str, Any] | None
    last_error: dict[str, Any] | None
    expires_at: int | None
    started_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    incomplete_details: dict[str, Any] | None
    model: str
    instructions: str | None
    tools: list[dict[str, Any]]
    metadata: dict[str, str]
    usage: dict[str, int] | None
    temperature: float | None
    top_p: float | None
    max_prompt_tokens: int | None
    max_completion_tokens: int | None
    truncation_strategy: dict[str, Any] | None
    tool_choice: Any
    parallel_tool_calls: bool
    response_format: Any


class RunStepObject(BaseModel):
    id: str
    object: Literal["thread.run.step"] = "thread.run.step"
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: Literal["message_creation", "tool_calls"]
    status: str
    step_details: dict[str, Any]
    last_error: dict[str, Any] | None
    expired_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    metadata: dict[str, str]
    usage: dict[str, int] | None
