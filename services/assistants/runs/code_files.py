"""Files around code_interpreter: inputs put in /mnt/data, outputs kept as files.

Inputs are the files of the assistant's and the thread's ``tool_resources.code_interpreter``
and of thread messages attached for code_interpreter; each appears under its name. Files
the code writes and figures it leaves open become files (purpose ``assistants_output``);
the reply links the former with ``file_path`` annotations and shows the latter as
``image_file`` parts, as OpenAI's did.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..db import Database
from ..files import create_file, read_file
from ..files.storage import LocalFileStorage
from ..sandbox import ExecutionResult, SandboxSession
from ..sandbox.files import safe_name
from ..tables import Assistant, Message, Run, Thread

if TYPE_CHECKING:
    from .execution import RunExecution

__all__ = ["RunFiles", "gather_file_ids", "message_parts", "put_inputs", "store_outputs"]

log = logging.getLogger(__name__)

SANDBOX_LINK = re.compile(r"sandbox:(/mnt/data/[^\s)\]\"'>]+)")


@dataclass
class RunFiles:
    """What one run's executions produced: sandbox paths → file ids, and figures to show."""

    paths: dict[str, str] = field(default_factory=dict)
    images: list[str] = field(default_factory=list)


def _resource_ids(tool_resources: dict[str, Any] | None) -> list[str]:
    section = (tool_resources or {}).get("code_interpreter") or {}
    return [i for i in section.get("file_ids") or () if isinstance(i, str)]


async def gather_file_ids(db: Database, run: Run, messages: list[Message]) -> list[str]:
    """The files code_interpreter is given in this run, in order, without repeats."""
    async with db.read() as session:
        assistant = await session.scalar(select(Assistant).where(Assistant.id == run.assistant_id))
        thread = await session.scalar(select(Thread).where(Thread.id == run.thread_id))
    ids = _resource_ids(assistant.tool_resources if assistant else None)
    ids += _resource_ids(thread.tool_resources if thread else None)
    for message in messages:
        for attachment in message.attachments or ():
            tools = {t.get("type") for t in attachment.get("tools") or ()}
            if "code_interpreter" in tools and isinstance(attachment.get("file_id"), str):
                ids.append(attachment["file_id"])
    return list(dict.fromkeys(ids))


async def put_inputs(
    db: Database, storage: LocalFileStorage, session: SandboxSession, file_ids: list[str]
) -> list[str]:
    """Copy files not yet in the session into its /mnt/data; the paths the code can open."""
    paths: list[str] = []
    for file_id in file_ids:
        if file_id in session.inputs:
            paths.append(session.inputs[file_id])
            continue
        try:
            row, data = await read_file(db, storage, file_id)
        except Exception as exc:  # a deleted file is left out, the run goes on
            log.warning("code_interpreter input %s unavailable: %s", file_id, exc)
            continue
        name = safe_name(row.filename)
        if name in {p.rsplit("/", 1)[-1] for p in session.inputs.values()}:
            name = f"{file_id}-{name}"
        path = session.put_file(name, data)
        session.inputs[file_id] = path
        paths.append(path)
    return paths


async def store_outputs(
    execution: RunExecution, storage: LocalFileStorage, result: ExecutionResult
) -> list[dict[str, Any]]:
    """Keep the execution's figures and written files as files; the step's image outputs."""
    files: RunFiles = execution.tool_state.setdefault("code_files", RunFiles())
    outputs: list[dict[str, Any]] = []
    for number, png in enumerate(result.images, start=1):
        row = await create_file(
            execution.db,
            storage,
            filename=f"figure-{number}.png",
            purpose="assistants_output",
            content=png,
        )
        files.images.append(row.id)
        outputs.append({"type": "image", "image": {"file_id": row.id}})
    for item in result.files:
        row = await create_file(
            execution.db,
            storage,
            filename=item.path.rsplit("/", 1)[-1],
            purpose="assistants_output",
            content=item.data,
        )
        files.paths[item.path] = row.id
    return outputs


def message_parts(execution: RunExecution, text: str) -> list[dict[str, Any]] | None:
    """The reply's content with file_path annotations and the run's figures, or None when
    code_interpreter produced nothing for it."""
    files: RunFiles | None = execution.tool_state.get("code_files")
    if files is None or not (files.paths or files.images):
        return None
    annotations = []
    for match in SANDBOX_LINK.finditer(text):
        file_id = files.paths.get(match.group(1))
        if file_id is not None:
            annotations.append(
                {
                    "type": "file_path",
                    "text": match.group(0),
                    "start_index": match.start(),
                    "end_index": match.end(),
                    "file_path": {"file_id": file_id},
                }
            )
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"type": "text", "text": {"value": text, "annotations": annotations}})
    parts += [{"type": "image_file", "image_file": {"file_id": i}} for i in files.images]
    files.images = []  # each figure is shown once, in the message that follows it
    return parts
