"""One response's execution: the model's stream as Responses events, then one write.

Events carry ``sequence_number``s from one counter per response, the ``response.created``
its route sends included. The database sees the start and the outcome, never a token.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import select, update

from ..clock import now
from ..db import Database
from ..ids import new_id
from ..runs.events import Event, EventBus
from ..runs.prompt import estimate_tokens
from ..runs.toolcalls import ToolCalls
from ..runs.upstream import UpstreamFailure
from . import claims
from .items import output_text_part
from .objects import response_object, response_usage
from .store import item_rows
from .tables import ResponseItem, ResponseRow

__all__ = ["ResponseExecution"]

log = logging.getLogger(__name__)

ChunkSource = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]
TERMINAL_EVENTS = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "failed": "response.failed",
}


class ResponseExecution:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        worker: str,
        lease: float,
        context_tokens: int,
        source: ChunkSource,
        row: ResponseRow,
        body: dict[str, Any] | None = None,
        store: bool = True,
    ) -> None:
        self.db = db
        self.bus = bus
        self.worker = worker
        self.lease = lease
        self.context_tokens = context_tokens
        self.source = source
        self.row = row
        self.response_id = row.id
        self.body = body
        self.store = store
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None
        self.text: list[str] = []
        self.calls = ToolCalls()
        self.call_items: dict[int, tuple[int, dict[str, Any]]] = {}
        self.open_call: int | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.cancel_requested = False
        self.done = asyncio.Event()
        self._model_task: asyncio.Task[None] | None = None
        # The write of a new foreground response, under way while the upstream is asked:
        # nothing of the answer is relayed or written before it committed.
        self.saving: asyncio.Future[None] | None = None

    # -- events ---------------------------------------------------------------------------

    def event(self, kind: str, /, **payload: Any) -> Event:
        data = {"type": kind, **payload, "sequence_number": self.sequence}
        self.sequence += 1
        return kind, data

    def emit(self, kind: str, /, **payload: Any) -> None:
        self.bus.publish(self.response_id, *self.event(kind, **payload))

    def snapshot(self) -> dict[str, Any]:
        obj = response_object(self.row, store=self.store)
        if self.row.status in ("queued", "in_progress"):
            obj["output"] = copy.deepcopy(self.output)
        return obj

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self._model_task is not None:
            self._model_task.cancel()

    # -- the execution --------------------------------------------------------------------

    async def execute(self) -> None:
        try:
            await self._execute()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("response %s: unexpected error", self.response_id)
            try:
                await self._finish("failed", error=("server_error", "The response failed."))
            except Exception:
                log.exception("response %s: could not record the failure", self.response_id)
                self.emit(
                    "error",
                    code="server_error",
                    message="The server had an error while processing the response.",
                    param=None,
                )
        finally:
            self.bus.end(self.response_id)
            self.done.set()

    async def _execute(self) -> None:
        if self.body is None:
            started = await claims.start(
                self.db, self.response_id, self.worker, self.lease, self.context_tokens
            )
            if started is None:
                return
            self.row = started.row
            if started.error is not None:
                await self._finish("failed", error=("invalid_prompt", started.error))
                return
            self.body = started.body
        assert self.body is not None
        self.emit("response.in_progress", response=self.snapshot())
        if self.cancel_requested:
            await self._finish("cancelled")
            return
        self._model_task = asyncio.create_task(self._consume(self.body))
        try:
            await self._model_task
        except asyncio.CancelledError:
            if not self.cancel_requested:
                raise  # the service is stopping: the lease lapses and recovery takes over
            await self._finish("cancelled")
            return
        except UpstreamFailure as exc:
            log.warning("response %s failed: %s: %s", self.response_id, exc.code, exc.message)
            await self._finish("failed", error=(exc.code, exc.message))
            return
        if self.cancel_requested:
            await self._finish("cancelled")
        elif self.finish_reason == "length":
            await self._finish("incomplete", reason="max_output_tokens")
        else:
            await self._finish("completed")

    async def _saved(self) -> bool:
        """Whether the response's row is written (waiting for the write under way)."""
        if self.saving is None:
            return True
        try:
            await asyncio.shield(self.saving)
        except Exception:
            return False  # the route answers the write's failure; there is nothing to update
        self.saving = None
        return True

    async def _consume(self, body: dict[str, Any]) -> None:
        async for chunk in self.source(body):
            if self.saving is not None and not await self._saved():
                return
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    self._on_text(delta["content"])
                for fragment in delta.get("tool_calls") or ():
                    self._on_tool_call(fragment)
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]

    # -- output items ---------------------------------------------------------------------

    def _add_item(self, item: dict[str, Any]) -> int:
        self.output.append(item)
        index = len(self.output) - 1
        self.emit("response.output_item.added", output_index=index, item=copy.deepcopy(item))
        return index

    def _on_text(self, content: str) -> None:
        if self.message is None:
            self._close_call("completed")
            self.message = {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            self.text = []
            index = self._add_item(self.message)
            self.emit(
                "response.content_part.added",
                item_id=self.message["id"],
                output_index=index,
                content_index=0,
                part=output_text_part(""),
            )
        self.text.append(content)
        self.emit(
            "response.output_text.delta",
            item_id=self.message["id"],
            output_index=len(self.output) - 1,
            content_index=0,
            delta=content,
            logprobs=[],
        )

    def _close_message(self, status: str) -> None:
        message = self.message
        if message is None:
            return
        self.message = None
        index = self.output.index(message)
        text = "".join(self.text)
        part = output_text_part(text)
        common = {"item_id": message["id"], "output_index": index, "content_index": 0}
        self.emit("response.output_text.done", **common, text=text, logprobs=[])
        self.emit("response.content_part.done", **common, part=part)
        message["content"] = [part]
        message["status"] = status
        self.emit("response.output_item.done", output_index=index, item=copy.deepcopy(message))

    def _on_tool_call(self, fragment: dict[str, Any]) -> None:
        delta = self.calls.add(fragment)
        position = delta["index"]
        arguments = (delta.get("function") or {}).get("arguments") or ""
        if position not in self.call_items:
            self._close_message("completed")
            self._close_call("completed")
            call = self.calls.calls[position]
            item = {
                "id": new_id("fc_"),
                "type": "function_call",
                "call_id": call.id,
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
            self.call_items[position] = (self._add_item(item), item)
            self.open_call = position
        if arguments:
            index, item = self.call_items[position]
            self.emit(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            )

    def _close_call(self, status: str) -> None:
        if self.open_call is None:
            return
        position, self.open_call = self.open_call, None
        index, item = self.call_items[position]
        call = self.calls.calls[position]
        item["name"] = call.name
        item["arguments"] = call.arguments
        self.emit(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=index,
            name=call.name,
            arguments=call.arguments,
        )
        item["status"] = status
        self.emit("response.output_item.done", output_index=index, item=copy.deepcopy(item))

    # -- the outcome ----------------------------------------------------------------------

    def _usage(self) -> dict[str, Any]:
        if self.usage:
            return response_usage(self.usage) or {}
        # The upstream sent none: an estimate beats claiming nothing was used.
        prompt = estimate_tokens((self.body or {}).get("messages", []))
        completion = sum(len(t) for t in self.text) // 4 + 1 if self.output else 0
        return response_usage({"prompt_tokens": prompt, "completion_tokens": completion}) or {}

    async def _finish(
        self, outcome: str, *, reason: str | None = None, error: tuple[str, str] | None = None
    ) -> None:
        if not await self._saved():
            return
        item_status = "completed" if outcome == "completed" else "incomplete"
        self._close_message(item_status)
        self._close_call(item_status)
        values: dict[str, Any] = {"status": outcome, "output": self.output}
        values["usage"] = self._usage() if outcome != "failed" or self.output else None
        if outcome == "completed":
            values["completed_at"] = now()
        elif outcome == "incomplete":
            values["incomplete_details"] = {"reason": reason}
        elif outcome == "failed":
            code, message = error or ("server_error", "The response failed.")
            values["error"] = {"code": code, "message": message}
        if self.store:
            row = await self._write(outcome, values)
            if row is None:
                return
            self.row = row
        else:
            for key, value in values.items():
                setattr(self.row, key, value)
        name = TERMINAL_EVENTS.get(self.row.status)
        if name is not None:
            self.emit(name, response=response_object(self.row, store=self.store))

    async def _write(self, outcome: str, values: dict[str, Any]) -> ResponseRow | None:
        async with self.db.write() as session:
            row = await session.scalar(
                select(ResponseRow).where(ResponseRow.id == self.response_id).with_for_update()
            )
            if row is None or row.worker_id != self.worker:
                log.warning("response %s is no longer ours to finish", self.response_id)
                return None
            if row.status == "cancelled":
                values = {**values, "status": "cancelled"}
                values.pop("completed_at", None)
            elif row.status != "in_progress":
                log.warning("response %s is %s; leaving it", self.response_id, row.status)
                return None
            for key, value in values.items():
                setattr(row, key, value)
            conversation = row.conversation_id
            if conversation and row.status in ("completed", "incomplete"):
                # The turn joins its conversation once it has happened: inputs, then output.
                await session.execute(
                    update(ResponseItem)
                    .where(ResponseItem.response_id == row.id, ResponseItem.kind == "input")
                    .values(conversation_id=conversation)
                )
                session.add_all(
                    item_rows(
                        self.output,
                        kind="output",
                        response_id=row.id,
                        conversation_id=conversation,
                    )
                )
            return row
