"""One response's execution: the model's stream as Responses events, then one write.

Events carry ``sequence_number``s from one counter per response, the ``response.created``
its route sends included. The database sees the start and the outcome, never a token.
Calls of the built-in tools (file_search, code_interpreter) are answered here and the model
goes on, for up to ``MAX_ROUNDS`` rounds; the caller answers only its own functions.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select, update

from ..builtin.file_search import IndexCitations, Searcher, StoreExpired
from ..clock import now
from ..db import Database
from ..ids import new_id
from ..runs.code_interpreter import CodeInterpreter
from ..runs.events import Event, EventBus
from ..runs.objects import add_usage
from ..runs.prompt import estimate_tokens
from ..runs.served import MAX_ROUNDS
from ..runs.toolcalls import ToolCall, ToolCalls
from ..runs.upstream import ASKED, UpstreamFailure
from . import claims
from .code_interpreter import CannotRun, ResponseInterpreter
from .file_search import ResponseSearch
from .items import output_text_part
from .objects import response_object, response_usage, shown_item
from .store import item_rows
from .tables import ResponseItem, ResponseRow

__all__ = ["ResponseExecution"]

log = logging.getLogger(__name__)

ChunkSource = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]
BUILT_IN_ITEMS = ("file_search_call", "code_interpreter_call")
BUILT_IN_NAMES = ("file_search", "code_interpreter")
# A new response's row is written once the upstream took the request, or after this long.
SAVE_AT_THE_LATEST = 0.02
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
        searcher: Searcher | None = None,
        interpreter: CodeInterpreter | None = None,
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
        self.searcher = searcher
        self.interpreter = interpreter
        self.search: ResponseSearch | None = None
        self.code: ResponseInterpreter | None = None
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.message: dict[str, Any] | None = None
        self.text: list[str] = []
        self.annotations: list[dict[str, Any]] = []
        self.citations: IndexCitations | None = None
        # This round's calls, and the output items that show them.
        self.calls = ToolCalls()
        self.call_items: dict[int, tuple[int, dict[str, Any]]] = {}
        self.open_call: int | None = None
        self.round_text: list[str] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.round_usage: dict[str, Any] | None = None
        self.completion_chars = 0
        self.cancel_requested = False
        self.done = asyncio.Event()
        self._model_task: asyncio.Task[None] | None = None
        # The write of a new foreground response (``save_when_asked``): nothing of the
        # answer is relayed or written before it committed.
        self.saving: asyncio.Future[None] | None = None
        self._save: Callable[[], Awaitable[None]] | None = None

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
            obj["output"] = [self.shown(item) for item in self.output]
        return obj

    def shown(self, item: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(shown_item(item, self.row.include or []))

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
        self._model_task = asyncio.create_task(self._rounds(self.body))
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
        except CannotRun as exc:
            await self._finish("failed", error=("server_error", str(exc)))
            return
        except StoreExpired as exc:
            await self._finish("failed", error=("invalid_prompt", exc.message))
            return
        if self.cancel_requested:
            await self._finish("cancelled")
        elif self.finish_reason == "length":
            await self._finish("incomplete", reason="max_output_tokens")
        else:
            await self._finish("completed")

    async def _rounds(self, body: dict[str, Any]) -> None:
        """Model turns until one ends without a call this server answers."""
        tools = self.row.tools or []
        self.search = ResponseSearch.of(self.searcher, tools)
        self.code = ResponseInterpreter.of(self.interpreter, tools, self.row.extra or {})
        if self.code is not None:
            body = await self.code.prepare(self, body)
        if self.search is not None:
            await self.search.before_model(self, body)
        for round_ in range(MAX_ROUNDS + 1):
            await self._consume(self._within_max_tool_calls(body))
            served = self._served()
            if not served or self.cancel_requested:
                return
            if round_ == MAX_ROUNDS:
                what = " or ".join(sorted({self.calls.calls[p].name for p, _, _ in served}))
                raise UpstreamFailure(
                    "server_error", f"The model called {what} more than {round_} times."
                )
            following = await self._answer(body, served)
            if following is None:
                return  # function calls wait for the caller's outputs
            body = following

    def _within_max_tool_calls(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body``, without the built-in tools once ``max_tool_calls`` of them were made."""
        limit = (self.row.extra or {}).get("max_tool_calls")
        made = sum(1 for i in self.output if i["type"] in BUILT_IN_ITEMS)
        if limit is None or made < limit or not body.get("tools"):
            return body
        tools = [t for t in body["tools"] if t["function"]["name"] not in BUILT_IN_NAMES]
        if tools:
            choice = body.get("tool_choice")
            if isinstance(choice, dict) and choice["function"]["name"] in BUILT_IN_NAMES:
                choice = "auto"
            return {**body, "tools": tools, "tool_choice": choice}
        return {
            k: v
            for k, v in body.items()
            if k not in ("tools", "tool_choice", "parallel_tool_calls")
        }

    def _served(self) -> list[tuple[int, int, dict[str, Any]]]:
        """This round's calls answered here: (position, output index, item)."""
        return [
            (position, index, item)
            for position, (index, item) in self.call_items.items()
            if item["type"] != "function_call"
        ]

    async def _answer(
        self, body: dict[str, Any], served: list[tuple[int, int, dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """Answer the round's built-in calls; the next round's request, or None when the
        caller's functions were called too."""
        self._close_message("completed")
        self._close_call("completed")
        results = []
        for position, index, item in served:
            call = self.calls.calls[position]
            if item["type"] == "file_search_call":
                assert self.search is not None
                text = await self.search.answer(self, index, item, call)
            else:
                assert self.code is not None
                text = await self.code.answer(self, index, item, call)
            results.append({"role": "tool", "tool_call_id": call.id, "content": text})
        if len(served) < len(self.call_items):
            return None
        chat_calls = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in self.calls.calls
        ]
        text = "".join(self.round_text) or None
        messages = [
            *body["messages"],
            {"role": "assistant", "content": text, "tool_calls": chat_calls},
            *results,
        ]
        following = {**body, "messages": messages}
        if following.get("tool_choice") not in (None, "none", "auto"):
            following["tool_choice"] = "auto"  # a forced call is made once, then the model answers
        if "max_tokens" in following and self.round_usage:
            spent = int(self.round_usage.get("completion_tokens") or 0)
            following["max_tokens"] = max(1, following["max_tokens"] - spent)
        self.calls, self.call_items, self.round_text = ToolCalls(), {}, []
        return following

    def save_when_asked(self, save: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        """Write the new response's row once the upstream has taken the request (or after
        ``SAVE_AT_THE_LATEST``): the model's first token takes longer than a commit, so
        the write costs the answer nothing. The future says how the write went."""
        loop = asyncio.get_running_loop()
        self._save = save
        self.saving = loop.create_future()
        loop.call_later(SAVE_AT_THE_LATEST, self._start_saving)
        return self.saving

    def _start_saving(self) -> None:
        if self._save is None or self.saving is None:
            return
        save, self._save, saving = self._save, None, self.saving

        def settle(task: asyncio.Task[None]) -> None:
            if saving.done():
                return
            if task.cancelled():
                saving.cancel()
            elif (error := task.exception()) is not None:
                saving.set_exception(error)
            else:
                saving.set_result(None)

        asyncio.ensure_future(save()).add_done_callback(settle)

    def written(self) -> bool:
        """Whether the response's row is in the database (its lease can be renewed)."""
        saving = self.saving
        if saving is None:
            return True
        return saving.done() and not saving.cancelled() and saving.exception() is None

    async def _saved(self) -> bool:
        """Whether the response's row is written (waiting for the write under way)."""
        if self.saving is None:
            return True
        self._start_saving()
        try:
            await asyncio.shield(self.saving)
        except Exception:
            return False  # the route answers the write's failure; there is nothing to update
        self.saving = None
        return True

    async def _consume(self, body: dict[str, Any]) -> None:
        self.round_usage = None
        ASKED.set(self._start_saving)
        async for chunk in self.source(body):
            if self.saving is not None and not await self._saved():
                return
            if chunk.get("usage"):
                self.round_usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    self._on_text(delta["content"])
                for fragment in delta.get("tool_calls") or ():
                    self._on_tool_call(fragment)
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
        self.usage = add_usage(self.usage, self.round_usage)

    # -- output items ---------------------------------------------------------------------

    def add_item(self, item: dict[str, Any]) -> int:
        self.output.append(item)
        index = len(self.output) - 1
        self.emit("response.output_item.added", output_index=index, item=self.shown(item))
        return index

    def finish_item(self, index: int, item: dict[str, Any]) -> None:
        self.emit("response.output_item.done", output_index=index, item=self.shown(item))

    def _on_text(self, content: str) -> None:
        self.round_text.append(content)
        if self.message is None:
            self._close_call("completed")
            self.message = {
                "id": new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            }
            self.text, self.annotations = [], []
            self.citations = IndexCitations(self.search.sources) if self.search else None
            index = self.add_item(self.message)
            self.emit(
                "response.content_part.added",
                item_id=self.message["id"],
                output_index=index,
                content_index=0,
                part=output_text_part(""),
            )
        annotations: list[dict[str, Any]] = []
        if self.citations is not None:
            content, annotations = self.citations.feed(content)
        self._relay_text(content, annotations)

    def _relay_text(self, content: str, annotations: list[dict[str, Any]]) -> None:
        assert self.message is not None
        common = {
            "item_id": self.message["id"],
            "output_index": self.output.index(self.message),
            "content_index": 0,
        }
        if content:
            self.text.append(content)
            self.completion_chars += len(content)
            self.emit("response.output_text.delta", **common, delta=content, logprobs=[])
        for annotation in annotations:
            self.annotations.append(annotation)
            self.emit(
                "response.output_text.annotation.added",
                **common,
                annotation_index=len(self.annotations) - 1,
                annotation=annotation,
            )

    def _close_message(self, status: str) -> None:
        message = self.message
        if message is None:
            return
        if self.citations is not None:
            self._relay_text(*self.citations.flush())  # what a partial marker held back
        self.message = None
        index = self.output.index(message)
        text = "".join(self.text)
        part = {**output_text_part(text), "annotations": list(self.annotations)}
        common = {"item_id": message["id"], "output_index": index, "content_index": 0}
        self.emit("response.output_text.done", **common, text=text, logprobs=[])
        self.emit("response.content_part.done", **common, part=part)
        message["content"] = [part]
        message["status"] = status
        self.finish_item(index, message)

    def _new_call_item(self, call: ToolCall) -> dict[str, Any]:
        """The output item a call streams into: a built-in tool's, or a function_call."""
        if call.name == "file_search" and self.search is not None:
            return self.search.new_item()
        if call.name == "code_interpreter" and self.code is not None:
            return self.code.new_item()
        return {
            "id": new_id("fc_"),
            "type": "function_call",
            "call_id": call.id,
            "name": call.name,
            "arguments": "",
            "status": "in_progress",
        }

    def _on_tool_call(self, fragment: dict[str, Any]) -> None:
        delta = self.calls.add(fragment)
        position = delta["index"]
        arguments = (delta.get("function") or {}).get("arguments") or ""
        call = self.calls.calls[position]
        if position not in self.call_items:
            self._close_message("completed")
            self._close_call("completed")
            item = self._new_call_item(call)
            index = self.add_item(item)
            self.call_items[position] = (index, item)
            self.open_call = position
            if item["type"] != "function_call":
                kind = item["type"]
                self.emit(f"response.{kind}.in_progress", output_index=index, item_id=item["id"])
        index, item = self.call_items[position]
        if item["type"] == "code_interpreter_call":
            assert self.code is not None
            code = self.code.code_delta(call)
            if code:
                self._code_delta(index, item, code)
        elif item["type"] == "function_call" and arguments:
            self.emit(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            )

    def _code_delta(self, index: int, item: dict[str, Any], code: str) -> None:
        self.emit(
            "response.code_interpreter_call_code.delta",
            item_id=item["id"],
            output_index=index,
            delta=code,
        )

    def _close_call(self, status: str) -> None:
        if self.open_call is None:
            return
        position, self.open_call = self.open_call, None
        index, item = self.call_items[position]
        call = self.calls.calls[position]
        if item["type"] == "code_interpreter_call":
            assert self.code is not None
            rest = self.code.close(call, item)
            if rest:
                self._code_delta(index, item, rest)
            self.emit(
                "response.code_interpreter_call_code.done",
                item_id=item["id"],
                output_index=index,
                code=item["code"],
            )
        elif item["type"] == "function_call":
            item["name"] = call.name
            item["arguments"] = call.arguments
            self.emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=call.name,
                arguments=call.arguments,
            )
        if item["type"] == "function_call" or status != "completed":
            # A built-in call is done once answered; one the response ends before is not.
            item["status"] = status
            self.finish_item(index, item)

    # -- the outcome ----------------------------------------------------------------------

    def _usage(self) -> dict[str, Any]:
        if self.usage:
            return response_usage(self.usage) or {}
        # The upstream sent none: an estimate beats claiming nothing was used.
        prompt = estimate_tokens((self.body or {}).get("messages", []))
        completion = self.completion_chars // 4 + 1 if self.output else 0
        return response_usage({"prompt_tokens": prompt, "completion_tokens": completion}) or {}

    async def _finish(
        self, outcome: str, *, reason: str | None = None, error: tuple[str, str] | None = None
    ) -> None:
        if not await self._saved():
            return
        item_status = "completed" if outcome == "completed" else "incomplete"
        self._close_message(item_status)
        self._close_call(item_status)
        for index, item in enumerate(self.output):
            if item["status"] in ("in_progress", "searching", "interpreting"):
                # A built-in call the response ended before it was answered.
                item["status"] = "failed" if outcome == "failed" else "incomplete"
                self.finish_item(index, item)
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
