"""The code_interpreter tool in runs: shown to the model as a function, answered by the sandbox.

The model calls ``code_interpreter(code)``; the run executes the code in its thread's sandbox
session, records a ``code_interpreter`` tool call (``input``, ``outputs``) on the run step,
streams it as step deltas, and gives the model the output to go on with.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..files.storage import LocalFileStorage
from ..sandbox import ExecutionResult, SandboxLimits, SandboxPool, SandboxUnavailable
from ..tables import Message
from . import code_files
from .toolcalls import ToolCall

if TYPE_CHECKING:
    from .execution import RunExecution

__all__ = [
    "MAX_ROUNDS",
    "NAME",
    "CodeInterpreter",
    "enabled",
    "function_tool",
    "history_call",
    "input_code",
    "prepare",
    "relay_delta",
]

log = logging.getLogger(__name__)

NAME = "code_interpreter"
# Rounds of model → code → model within one run, before the run gives up.
MAX_ROUNDS = 10

FUNCTION = {
    "name": NAME,
    "description": (
        "Run Python 3 code in a stateful sandbox (variables persist between calls) and get "
        "what it prints back. numpy, pandas and matplotlib are available; there is no "
        "network. Files given by the user are in /mnt/data; save files for the user to "
        "/mnt/data. Figures left open by matplotlib are shown to the user."
    ),
    "parameters": {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The Python code to run."}},
        "required": ["code"],
    },
}


def enabled(tools: list[dict[str, Any]] | None) -> bool:
    return any(t.get("type") == NAME for t in tools or ())


def output_chars(interpreter: CodeInterpreter | None) -> int:
    """How much of a call's output the model reads back."""
    return interpreter.pool.limits.output_chars if interpreter else SandboxLimits().output_chars


def function_tool() -> dict[str, Any]:
    return {"type": "function", "function": FUNCTION}


_CODE_START = re.compile(r'\s*\{\s*"code"\s*:\s*"')


def input_code(arguments: str) -> str:
    """The code of a finished call: ``{"code": ...}``, or the raw text if the model sent that."""
    try:
        # strict=False: some local models put raw newlines inside the JSON string.
        parsed = json.loads(arguments, strict=False)
    except ValueError:
        return arguments
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        return parsed["code"]
    return arguments


def partial_code(arguments: str) -> str:
    """As much of the code as can be decoded from arguments still being streamed."""
    match = _CODE_START.match(arguments)
    if match is None:
        return ""
    raw = arguments[match.end() :]
    end, i = len(raw), 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == '"':
            end = i
            break
        i += 1
    raw = raw[:end]
    # An escape sequence cut in half decodes badly: drop up to one escape's length.
    for cut in range(7):
        try:
            return json.loads(f'"{raw[: len(raw) - cut]}"', strict=False)
        except ValueError:
            continue
    return ""


def relay_delta(call: ToolCall, delta: dict[str, Any]) -> dict[str, Any]:
    """The step delta for a code_interpreter call's fragment: the code as it grows."""
    if call.name != NAME:
        return delta
    call.type = NAME
    code = partial_code(call.arguments)
    new, call.streamed = code[len(call.streamed) :], code if code else call.streamed
    out: dict[str, Any] = {"index": delta["index"], "type": NAME}
    if "id" in delta:
        out["id"] = call.id
        out["code_interpreter"] = {"input": new, "outputs": []}
    else:
        out["code_interpreter"] = {"input": new}
    return out


def model_output(outputs: list[dict[str, Any]], max_chars: int) -> str:
    """What the model reads for a call: its logs (cut in the middle when long)."""
    logs = "".join(o.get("logs", "") for o in outputs if o.get("type") == "logs")
    images = sum(1 for o in outputs if o.get("type") == "image")
    return ExecutionResult(logs=logs, images=[b""] * images).model_output(max_chars)


def history_call(call: dict[str, Any], max_chars: int) -> tuple[dict[str, Any], str]:
    """A recorded code_interpreter call as the chat tool call and tool output it was."""
    details = call.get(NAME) or {}
    arguments = json.dumps({"code": details.get("input", "")})
    chat_call = {
        "id": call["id"],
        "type": "function",
        "function": {"name": NAME, "arguments": arguments},
    }
    return chat_call, model_output(details.get("outputs") or [], max_chars)


class CodeInterpreter:
    """The service's sandbox pool and the limits runs use it with."""

    def __init__(self, pool: SandboxPool, storage: LocalFileStorage | None = None) -> None:
        self.pool = pool
        self.storage = storage

    @classmethod
    def from_settings(
        cls, settings: Settings, storage: LocalFileStorage | None = None
    ) -> CodeInterpreter:
        limits = SandboxLimits(
            timeout_seconds=settings.code_interpreter_timeout_seconds,
            cpu_seconds=int(settings.code_interpreter_timeout_seconds),
            memory_bytes=settings.code_interpreter_memory_mb * 1024 * 1024,
            max_processes=settings.code_interpreter_max_processes,
            output_chars=settings.code_interpreter_output_chars,
            log_bytes=settings.code_interpreter_log_bytes,
            disk_bytes=settings.code_interpreter_disk_mb * 1024 * 1024,
        )
        work_dir = Path(settings.code_interpreter_dir) if settings.code_interpreter_dir else None
        pool = SandboxPool(
            limits=limits,
            bwrap=settings.code_interpreter_bwrap,
            work_dir=work_dir,
            idle_seconds=settings.code_interpreter_idle_seconds,
            max_sessions=settings.code_interpreter_max_sessions,
            allow_unsandboxed=settings.code_interpreter_allow_unsandboxed,
            uid_base=settings.code_interpreter_uid_base,
        )
        return cls(pool, storage)

    async def execute(self, key: str, code: str) -> tuple[ExecutionResult, str]:
        """Run ``code`` in the session ``key``: the result, and its logs with what else the
        reader should know (the error, output not kept, files written)."""
        try:
            result = await self.pool.execute(key, code)
        except SandboxUnavailable as exc:
            result = ExecutionResult(error=f"Error: {exc}")
        logs = result.logs
        if result.dropped_bytes:
            logs += f"\n[... {result.dropped_bytes} more bytes of output not kept]"
        if result.error and result.error not in logs:
            logs = f"{logs}\n{result.error}" if logs else result.error
        for item in result.files:
            logs += f"\n[file written: {item.path}]"
        return result, logs

    async def run(
        self, execution: RunExecution, call: ToolCall
    ) -> tuple[list[dict[str, Any]], str]:
        """Execute one call in the thread's session: its step outputs and the model's text."""
        assert execution.run is not None
        code = input_code(call.arguments)
        call.type = NAME
        call.streamed = code
        result, logs = await self.execute(execution.run.thread_id, code)
        outputs: list[dict[str, Any]] = [{"type": "logs", "logs": logs}] if logs else []
        if self.storage is not None:
            outputs += await code_files.store_outputs(execution, self.storage, result)
        call.outputs = outputs
        call.result = result
        return outputs, result.model_output(self.pool.limits.output_chars)

    async def stop(self) -> None:
        await self.pool.stop()


async def unavailable(interpreter: CodeInterpreter | None) -> str | None:
    """Why code cannot be run here, or None when it can."""
    if interpreter is None:
        return "code_interpreter is not available in this service"
    try:
        await interpreter.pool.ensure_available()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


async def prepare(
    execution: RunExecution, body: dict[str, Any], messages: list[Message]
) -> dict[str, Any]:
    """Put the run's input files in the session; the request then names them to the model."""
    interpreter, run = execution.code_interpreter, execution.run
    if interpreter is None or interpreter.storage is None or run is None:
        return body
    file_ids = await code_files.gather_file_ids(execution.db, run, messages)
    if not file_ids:
        return body
    session = await interpreter.pool.session(run.thread_id)
    paths = await code_files.put_inputs(execution.db, interpreter.storage, session, file_ids)
    if not paths:
        return body
    tools = []
    for tool in body.get("tools") or ():
        if tool["function"]["name"] == NAME:
            note = " Files available: " + ", ".join(paths) + "."
            function = {**tool["function"], "description": FUNCTION["description"] + note}
            tool = {"type": "function", "function": function}
        tools.append(tool)
    return {**body, "tools": tools}
