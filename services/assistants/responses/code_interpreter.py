"""The code_interpreter tool in Responses: containers, and the model's calls run in them.

A container is the name of one sandbox session (the runs' pool, keyed by container id
instead of thread id), with the files it is given. ``{"type": "auto"}`` reuses the live
container of the latest ``code_interpreter_call`` in the response's context (its
``previous_response_id`` chain or conversation), else makes a new one; a container id names
one such container, which must exist and not have expired. A container expires after
CODE_INTERPRETER_IDLE_SECONDS without use, when its session ends; its files are put in
again whenever a session starts for it, on any replica.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..errors import InvalidRequest, NotFound
from ..ids import new_id
from ..runs import code_files
from ..runs.code_interpreter import (
    FUNCTION,
    NAME,
    CodeInterpreter,
    input_code,
    partial_code,
    unavailable,
)
from ..runs.toolcalls import ToolCall
from ..tables import File
from .tables import Container

if TYPE_CHECKING:
    from .execution import ResponseExecution

__all__ = ["NAME", "ResponseInterpreter", "normalise_tool", "resolve_container"]

MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
MAX_FILES = 50


def normalise_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``code_interpreter`` tool as stored and shown; a bad container is a 400."""
    for key in tool:
        if key not in ("type", "container"):
            raise InvalidRequest(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}")
    container = tool.get("container")
    param = f"{where}.container"
    if isinstance(container, str) and container:
        return {"type": NAME, "container": container}
    if not isinstance(container, dict) or container.get("type") != "auto":
        raise InvalidRequest(
            f"Missing required parameter: '{param}' (a container id or {{'type': 'auto'}}).",
            param=param,
        )
    shown: dict[str, Any] = {"type": "auto"}
    file_ids = container.get("file_ids") or []
    if not isinstance(file_ids, list) or not all(isinstance(f, str) and f for f in file_ids):
        raise InvalidRequest(f"Invalid '{param}.file_ids': expected file ids.", param=param)
    if len(file_ids) > MAX_FILES:
        raise InvalidRequest(
            f"Invalid '{param}.file_ids': at most {MAX_FILES} files.", param=f"{param}.file_ids"
        )
    shown["file_ids"] = list(dict.fromkeys(file_ids))
    memory = container.get("memory_limit")
    if memory is not None:
        if memory not in MEMORY_LIMITS:
            raise InvalidRequest(
                f"Invalid '{param}.memory_limit': expected one of {', '.join(MEMORY_LIMITS)}.",
                param=f"{param}.memory_limit",
            )
        shown["memory_limit"] = memory  # shown; CODE_INTERPRETER_MEMORY_MB is what applies
    policy = container.get("network_policy")
    if policy is not None and (policy or {}).get("type") != "disabled":
        raise InvalidRequest(
            "Containers on this server have no network: only a 'disabled' network_policy.",
            param=f"{param}.network_policy",
            code="unsupported",
        )
    for key in container:
        if key not in ("type", "file_ids", "memory_limit", "network_policy"):
            raise InvalidRequest(f"Unknown parameter: '{param}.{key}'.", param=f"{param}.{key}")
    return {"type": NAME, "container": shown}


def _live(row: Container, idle_seconds: float) -> bool:
    return row.last_active_at + idle_seconds > now()


async def _check_files(session: AsyncSession, file_ids: list[str], param: str) -> None:
    found = set((await session.scalars(select(File.id).where(File.id.in_(file_ids)))).all())
    for i, file_id in enumerate(file_ids):
        if file_id not in found:
            raise NotFound(
                f"No file found with id '{file_id}'.", param=f"{param}[{i}]", code="not_found"
            )


async def resolve_container(
    session: AsyncSession,
    tools: list[dict[str, Any]],
    history: list[dict[str, Any]],
    idle_seconds: float,
) -> str | None:
    """The container a response's code runs in (made or extended here), or None when it
    has no code_interpreter."""
    where, tool = next(
        ((f"tools[{i}]", t) for i, t in enumerate(tools) if t.get("type") == NAME), ("", None)
    )
    if tool is None:
        return None
    container = tool["container"]
    if isinstance(container, str):
        row = await session.scalar(select(Container).where(Container.id == container))
        if row is None:
            raise NotFound(
                f"No container found with id '{container}'.",
                param=f"{where}.container",
                code="not_found",
            )
        if not _live(row, idle_seconds):
            raise InvalidRequest(
                f"Container '{container}' has expired (unused for {idle_seconds:g} s); use "
                "{'type': 'auto'} for a new one.",
                param=f"{where}.container",
                code="container_expired",
            )
        return row.id
    file_ids = container.get("file_ids") or []
    await _check_files(session, file_ids, f"{where}.container.file_ids")
    used = [i["container_id"] for i in history if i.get("type") == "code_interpreter_call"]
    for container_id in reversed(used):
        row = await session.scalar(select(Container).where(Container.id == container_id))
        if row is not None and _live(row, idle_seconds):
            row.file_ids = list(dict.fromkeys([*row.file_ids, *file_ids]))
            return row.id
    stamp = now()
    row = Container(
        id=new_id("cntr_"),
        created_at=stamp,
        metadata_={},
        name="auto",
        file_ids=file_ids,
        last_active_at=stamp,
    )
    session.add(row)
    return row.id


class ResponseInterpreter:
    """One response's code_interpreter: its container and the calls the model makes."""

    def __init__(self, interpreter: CodeInterpreter, container_id: str) -> None:
        self.interpreter = interpreter
        self.container_id = container_id

    @classmethod
    def of(
        cls, interpreter: CodeInterpreter | None, tools: list[dict[str, Any]], extra: dict[str, Any]
    ) -> ResponseInterpreter | None:
        if interpreter is None or not any(t.get("type") == NAME for t in tools):
            return None
        container_id = extra.get("container_id")
        return cls(interpreter, container_id) if container_id else None

    async def prepare(self, execution: ResponseExecution, body: dict[str, Any]) -> dict[str, Any]:
        """Make sure code can run, put the container's files in its session and name them to
        the model; raises CannotRun when the sandbox is unavailable."""
        problem = await unavailable(self.interpreter)
        if problem is not None:
            raise CannotRun(problem)
        async with execution.db.write() as session:
            row = await session.scalar(select(Container).where(Container.id == self.container_id))
            if row is None:
                raise CannotRun(f"The container '{self.container_id}' was deleted.")
            row.last_active_at = now()
            file_ids = list(row.file_ids or [])
        if not file_ids or self.interpreter.storage is None:
            return body
        sandbox = await self.interpreter.pool.session(self.container_id)
        paths = await code_files.put_inputs(
            execution.db, self.interpreter.storage, sandbox, file_ids
        )
        if not paths:
            return body
        note = " Files available: " + ", ".join(paths) + "."
        tools = []
        for tool in body.get("tools") or ():
            if tool["function"]["name"] == NAME:
                function = {**tool["function"], "description": FUNCTION["description"] + note}
                tool = {"type": "function", "function": function}
            tools.append(tool)
        return {**body, "tools": tools}

    def new_item(self) -> dict[str, Any]:
        return {
            "id": new_id("ci_"),
            "type": "code_interpreter_call",
            "status": "in_progress",
            "code": "",
            "container_id": self.container_id,
            "outputs": None,
        }

    @staticmethod
    def code_delta(call: ToolCall) -> str:
        """The code streamed since the last delta, as far as the arguments decode."""
        code = partial_code(call.arguments)
        new = code[len(call.streamed) :] if code.startswith(call.streamed) else ""
        if new:
            call.streamed = code
        return new

    @staticmethod
    def close(call: ToolCall, item: dict[str, Any]) -> str:
        """The call's arguments are complete: its code (what the stream did not show yet
        goes in one last delta, returned)."""
        code = input_code(call.arguments)
        rest = code[len(call.streamed) :] if code.startswith(call.streamed) else ""
        call.streamed = code
        item["code"] = code
        return rest

    async def answer(
        self, execution: ResponseExecution, index: int, item: dict[str, Any], call: ToolCall
    ) -> str:
        """Run the call's code in the container: the item's outputs; what the model reads."""
        common = {"output_index": index, "item_id": item["id"]}
        item["status"] = "interpreting"
        execution.emit("response.code_interpreter_call.interpreting", **common)
        result, logs = await self.interpreter.execute(self.container_id, item["code"] or "")
        outputs: list[dict[str, Any]] = [{"type": "logs", "logs": logs}] if logs else []
        for png in result.images:
            url = "data:image/png;base64," + base64.b64encode(png).decode()
            outputs.append({"type": "image", "url": url})
        item["outputs"] = outputs
        item["status"] = "completed"
        async with execution.db.write() as session:
            row = await session.scalar(select(Container).where(Container.id == self.container_id))
            if row is not None:
                row.last_active_at = now()
        execution.emit("response.code_interpreter_call.completed", **common)
        execution.finish_item(index, item)
        return result.model_output(self.interpreter.pool.limits.output_chars)


class CannotRun(Exception):
    """Code cannot be run for this response (no sandbox here, or no container)."""
