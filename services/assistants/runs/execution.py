"""One run's execution: one model turn from in_progress to its next resting state.

Events are published as they happen; the database sees a few writes per turn (the start,
which also writes the empty reply message, then the outcome), never one per token.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..builtin.file_search import Citations, StoreExpired
from ..clock import now
from ..db import Database
from ..domain.messages import message_object, text_content
from ..domain.runs import TERMINAL_STATUSES, end_step, mark_cancelled, run_object, step_object
from ..errors import error_body
from ..tables import Message, Run, RunStep
from . import claims, code_files, code_interpreter, file_search, served
from .code_interpreter import CodeInterpreter
from .events import Event, EventBus
from .file_search import FileSearch, RunSearch
from .objects import add_usage, message_rows, new_step
from .prompt import PromptTooLong, build_request, run_history, thread_history
from .toolcalls import ToolCalls
from .upstream import UpstreamFailure

__all__ = ["ChunkSource", "RunExecution"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ChunkSource = Callable[[dict[str, Any]], AsyncIterator[dict[str, Any]]]


async def _uncancellable(coro: Awaitable[T]) -> T:
    """Finish a database write even if a cancel arrives meanwhile, then honour the cancel."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class Finished(enum.Enum):
    FINISHED = "finished"


FINISHED = Finished.FINISHED


@dataclass
class Turn:
    """What the model produced so far in this turn (kept in memory, not in the database)."""

    # Rows written when the turn started, announced only if the model writes text.
    placeholder: tuple[Message, RunStep] | None = None
    message: Message | None = None
    message_step: RunStep | None = None
    text: list[str] = field(default_factory=list)
    tool_step: RunStep | None = None
    calls: ToolCalls = field(default_factory=ToolCalls)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None


class RunExecution:
    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        worker: str,
        lease: float,
        source: ChunkSource,
        run_id: str,
        started: claims.Started | None = None,
        code_interpreter: CodeInterpreter | None = None,
        file_search: FileSearch | None = None,
    ) -> None:
        self.db = db
        self.file_search = file_search
        # Set when the run has stores to search: the sources, and its [n] citations.
        self.search: RunSearch | None = None
        self.bus = bus
        self.worker = worker
        self.lease = lease
        self.source = source
        self.run_id = run_id
        self.started = started
        self.code_interpreter = code_interpreter
        # What built-in tools keep for the length of the run (runs/code_files.py).
        self.tool_state: dict[str, Any] = {}
        self.cancel_requested = False
        self._model_task: asyncio.Task[None] | None = None
        self.turn = Turn()
        self.run: Run | None = None

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self._model_task is not None:
            self._model_task.cancel()

    def emit(self, name: str, data: Any) -> None:
        self.bus.publish(self.run_id, name, data)

    async def execute(self) -> None:
        try:
            await self._execute()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s: unexpected error", self.run_id)
            try:
                await self._finish("failed", error=("server_error", "The run failed unexpectedly."))
            except Exception:
                # Not even the failure could be recorded (the database is gone, say): tell the
                # stream with an error event; the lapsing lease will let recovery end the run.
                log.exception("run %s: could not record the failure", self.run_id)
                self.emit(
                    "error",
                    error_body(
                        "The server had an error while processing the run.",
                        "server_error",
                        code="server_error",
                    ),
                )
        finally:
            self.bus.end(self.run_id)

    async def _execute(self) -> None:
        started = self.started or await claims.start_run(
            self.db, self.run_id, self.worker, self.lease
        )
        if started is None:
            await self._report_current_state()
            return
        run = self.run = started.run
        self.turn.placeholder = started.prepared
        self.emit("thread.run.in_progress", run_object(run))
        budget = None
        if run.max_completion_tokens is not None:
            used = (run.usage or {}).get("completion_tokens", 0)
            budget = run.max_completion_tokens - used
            if budget <= 0:
                await self._finish("incomplete", reason="max_completion_tokens")
                return
        try:
            prompt = build_request(
                run,
                thread_history(started.thread_messages),
                run_history(
                    started.steps,
                    started.own_messages,
                    code_interpreter.output_chars(self.code_interpreter),
                ),
                budget,
            )
        except PromptTooLong:
            await self._finish("incomplete", reason="max_prompt_tokens")
            return
        if self.file_search is not None:
            try:
                self.search = await self.file_search.before_model(
                    self, run, started.thread_messages, prompt.body
                )
            except StoreExpired as exc:
                await self._finish("failed", error=("invalid_prompt", exc.message))
                return
        if self.cancel_requested:
            await self._finish("cancelled")
            return
        builtin = code_interpreter.enabled(run.tools)
        if builtin and (problem := await code_interpreter.unavailable(self.code_interpreter)):
            await self._finish("failed", error=("server_error", problem))
            return
        body: dict[str, Any] | None = prompt.body
        if builtin:
            body = await code_interpreter.prepare(self, prompt.body, started.thread_messages)
        answers_itself = served.served_names(self)
        for round_ in range(served.MAX_ROUNDS + 1):
            assert body is not None
            if await self._step(self._consume(body)) is FINISHED:
                return
            calls = self.turn.calls.calls
            if not answers_itself or self.cancel_requested:
                break
            if not any(c.name in answers_itself for c in calls):
                break
            if round_ == served.MAX_ROUNDS:
                what = " or ".join(sorted(answers_itself))
                limit = f"The model called {what} more than {round_} times in one run."
                await self._finish("failed", error=("server_error", limit))
                return
            # The service answers these calls itself, then the model goes on.
            answered = await self._step(served.answer_calls(self, body))
            if answered is FINISHED:
                return
            body = answered  # type: ignore[assignment]
            if body is None:
                break  # function calls wait for the caller's outputs
        turn = self.turn
        if self.cancel_requested:
            await self._finish("cancelled")
        elif turn.calls:
            await self._finish("requires_action")
        elif turn.finish_reason == "length":
            await self._finish("incomplete", reason="max_completion_tokens")
        else:
            await self._finish("completed")

    async def _step(self, coro: Awaitable[T]) -> T | Finished:
        """Await a model turn or tool round as the cancellable task; FINISHED if the run
        ended meanwhile (cancelled, or the upstream failed)."""
        self._model_task = asyncio.ensure_future(coro)
        try:
            return await self._model_task
        except asyncio.CancelledError:
            if not self.cancel_requested:
                raise  # the service is stopping; the lease lapses and the run is recovered
            await self._finish("cancelled")
        except UpstreamFailure as exc:
            log.warning("run %s failed: %s: %s", self.run_id, exc.code, exc.message)
            await self._finish("failed", error=(exc.code, exc.message))
        except StoreExpired as exc:  # the model searched a store that expired meanwhile
            await self._finish("failed", error=("invalid_prompt", exc.message))
        return FINISHED

    async def _report_current_state(self) -> None:
        async with self.db.read() as session:
            row = await session.scalar(select(Run).where(Run.id == self.run_id))
        if row is not None and row.status in (*TERMINAL_STATUSES, "requires_action"):
            self.emit(f"thread.run.{row.status}", run_object(row))

    # -- the model turn -------------------------------------------------------------------

    async def _consume(self, body: dict[str, Any]) -> None:
        turn = self.turn
        async for chunk in self.source(body):
            if chunk.get("usage"):
                turn.usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                content = delta.get("content")
                if content:
                    await self._on_text(content)
                if delta.get("tool_calls"):
                    await self._on_tool_calls(delta["tool_calls"])
                if choice.get("finish_reason"):
                    turn.finish_reason = choice["finish_reason"]
        if self.citations is not None:
            await self._on_text("")  # what a partial citation marker held back

    @property
    def citations(self) -> Citations | None:
        return self.search.citations if self.search is not None else None

    async def _on_text(self, content: str) -> None:
        annotations: list[dict[str, Any]] = []
        if self.citations is not None:
            content, annotations = (
                self.citations.feed(content) if content else self.citations.flush()
            )
        if content:
            await self._on_model_text(content, annotations)

    async def _on_model_text(self, content: str, annotations: list[dict[str, Any]]) -> None:
        turn = self.turn
        if turn.message is None:
            if turn.placeholder is not None:
                self._announce_message(*turn.placeholder)
                turn.placeholder = None
            else:
                await _uncancellable(self._open_message())
        assert turn.message is not None
        turn.text.append(content)
        self.emit(
            "thread.message.delta",
            {
                "id": turn.message.id,
                "object": "thread.message.delta",
                "delta": {
                    "content": [
                        {
                            "index": 0,
                            "type": "text",
                            "text": {"value": content, "annotations": self._numbered(annotations)},
                        }
                    ]
                },
            },
        )

    def _numbered(self, annotations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Delta annotations carry their index among the message's annotations."""
        if not annotations or self.citations is None:
            return []
        first = len(self.citations.annotations) - len(annotations)
        return [{"index": first + i, **a} for i, a in enumerate(annotations)]

    async def _open_message(self) -> None:
        assert self.run is not None
        message, step = message_rows(self.run)
        # Written before any token is relayed: after a crash the thread still shows the
        # message this run was writing.
        await self._insert(step, message)
        self._announce_message(message, step)

    def _announce_message(self, message: Message, step: RunStep) -> None:
        self.turn.message, self.turn.message_step = message, step
        self.emit("thread.run.step.created", step_object(step))
        self.emit("thread.run.step.in_progress", step_object(step))
        self.emit("thread.message.created", message_object(message))
        self.emit("thread.message.in_progress", message_object(message))

    async def _on_tool_calls(self, fragments: list[dict[str, Any]]) -> None:
        turn = self.turn
        if turn.message is not None and turn.message.status == "in_progress":
            # Text came first: that message is done before the tool calls start.
            await _uncancellable(self._complete_message())
        if turn.tool_step is None:
            assert self.run is not None
            step = new_step(self.run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
            await _uncancellable(self._insert(step))
            turn.tool_step = step
            self.emit("thread.run.step.created", step_object(step))
            self.emit("thread.run.step.in_progress", step_object(step))
        answers_itself = served.served_names(self)
        for frag in fragments:
            added = turn.calls.add(frag)
            call = turn.calls.calls[added["index"]]
            delta: dict[str, Any] | None = added
            if code_interpreter.NAME in answers_itself:
                delta = code_interpreter.relay_delta(call, delta)
            if file_search.NAME in answers_itself:
                delta = file_search.relay_delta(call, delta)
            if delta is None:
                continue
            step = turn.tool_step
            self.emit(
                "thread.run.step.delta",
                {
                    "id": step.id,
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": [delta]}},
                },
            )

    async def _insert(self, *rows: Any) -> None:
        async with self.db.write() as session:
            session.add_all(rows)

    async def _complete_message(self) -> None:
        async with self.db.write() as session:
            events = await self._close_message_in(session, "completed")
        for name, data in events:
            self.emit(name, data)

    async def _close_message_in(
        self,
        session: AsyncSession,
        status: str,
        reason: str | None = None,
        error: tuple[str, str] | None = None,
    ) -> list[Event]:
        """Write the message's text (and its step) once, at the end of the message."""
        turn = self.turn
        assert turn.message is not None and turn.message_step is not None
        message = await session.merge(turn.message)
        step = await session.merge(turn.message_step)
        stamp = now()
        text = "".join(turn.text)
        parts = code_files.message_parts(self, text)
        message.content = parts or ([text_content(text)] if text else [])
        if text and self.citations is not None:
            first = message.content[0]["text"]
            first["annotations"] = sorted(
                [*first["annotations"], *self.citations.annotations],
                key=lambda annotation: annotation["start_index"],
            )
        message.status = status
        if status == "completed":
            message.completed_at = stamp
        else:
            message.incomplete_at = stamp
            message.incomplete_details = {"reason": reason}
        ended = {"run_cancelled": "cancelled", "run_failed": "failed"}.get(
            reason or "", "completed"
        )
        end_step(step, ended, stamp)
        if ended == "completed":
            step.usage = add_usage(None, turn.usage) if not turn.calls else None
        elif ended == "failed":
            code, message_text = error or ("server_error", "The run failed.")
            step.last_error = {"code": code, "message": message_text}
        turn.message, turn.message_step = message, step
        shown = [{"index": i, **p} for i, p in enumerate(parts or ()) if p["type"] == "image_file"]
        delta = {"id": message.id, "object": "thread.message.delta", "delta": {"content": shown}}
        return [
            *([("thread.message.delta", delta)] if shown else []),
            (f"thread.message.{status}", message_object(message)),
            (f"thread.run.step.{step.status}", step_object(step)),
        ]

    # -- outcomes -------------------------------------------------------------------------

    async def _finish(
        self, outcome: str, *, reason: str | None = None, error: tuple[str, str] | None = None
    ) -> None:
        turn = self.turn
        stamp = now()
        events: list[Event] = []
        async with self.db.write() as session:
            run = await session.scalar(select(Run).where(Run.id == self.run_id).with_for_update())
            if (
                run is None
                or run.worker_id != self.worker
                or run.status not in ("in_progress", "cancelling")
            ):
                log.warning("run %s is no longer ours to finish; leaving it", self.run_id)
                return
            if run.status == "cancelling" and outcome in ("completed", "requires_action"):
                outcome = "cancelled"
            # The reply ends in the same transaction as the run: one write per run's end.
            if turn.message is not None and turn.message.status == "in_progress":
                if outcome == "completed":
                    events += await self._close_message_in(session, "completed")
                else:
                    why = {"incomplete": "max_tokens", "cancelled": "run_cancelled"}
                    events += await self._close_message_in(
                        session, "incomplete", why.get(outcome, "run_failed"), error
                    )
            if turn.placeholder is not None:
                # The model wrote no text this turn: the prepared message never existed.
                for row in turn.placeholder:
                    await session.delete(await session.merge(row))
                turn.placeholder = None
            run.usage = add_usage(run.usage, turn.usage)
            step = turn.tool_step
            if step is not None:
                step = await session.merge(step)
                step.step_details = {
                    "type": "tool_calls",
                    "tool_calls": [c.as_object(with_output=True) for c in turn.calls.calls],
                }
                step.usage = add_usage(None, turn.usage)
                if outcome != "requires_action":
                    ended = {"cancelled": "cancelled", "completed": "completed"}.get(
                        outcome, "failed"
                    )
                    end_step(step, ended, stamp)
                    if step.status == "failed" and error:
                        step.last_error = {"code": error[0], "message": error[1]}
                    events.append((f"thread.run.step.{step.status}", step_object(step)))
            if outcome == "requires_action":
                run.status = "requires_action"
                calls = [
                    c.as_object(with_output=False) for c in turn.calls.calls if c.type == "function"
                ]
                run.required_action = {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": calls},
                }
            elif outcome == "cancelled":
                mark_cancelled(run)
            else:
                run.status = outcome
                run.expires_at = None
                if outcome == "completed":
                    run.completed_at = stamp
                elif outcome == "incomplete":
                    run.completed_at = stamp
                    run.incomplete_details = {"reason": reason}
                elif outcome == "failed":
                    run.failed_at = stamp
                    code, message = error or ("server_error", "The run failed.")
                    run.last_error = {"code": code, "message": message}
            events.append((f"thread.run.{run.status}", run_object(run)))
        for name, data in events:
            self.emit(name, data)
