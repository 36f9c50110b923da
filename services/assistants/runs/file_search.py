"""The file_search tool in runs: before the model answers, search the run's vector stores
with the conversation's last user message, record a ``file_search`` tool-call step and give
the model the results as numbered sources; the model may search again with its own queries
(``file_search`` offered as a function, answered here). Its ``[n]`` citations become
OpenAI's ``【n†filename】`` markers with ``file_citation`` annotations at exact offsets."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ..builtin.file_search import (
    NAME,
    Citations,
    Searcher,
    Sources,
    call_queries,
    function_tool,
    ranking_options,
)
from ..clock import now
from ..domain.runs import end_step, step_object
from ..ids import new_id
from ..tables import Assistant, Message, Run, Thread
from ..vector_stores.search import SearchHit
from .objects import new_step
from .toolcalls import ToolCall

if TYPE_CHECKING:
    from .execution import RunExecution

__all__ = ["NAME", "FileSearch", "RunSearch", "history_call", "relay_delta", "store_ids_of"]

log = logging.getLogger(__name__)


def store_ids_of(*resources: dict[str, Any] | None) -> list[str]:
    ids: list[str] = []
    for resource in resources:
        for store_id in ((resource or {}).get("file_search") or {}).get("vector_store_ids", []):
            if store_id not in ids:
                ids.append(store_id)
    return ids


def _last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            texts = [p["text"]["value"] for p in message.content or [] if p.get("type") == "text"]
            return "\n".join(texts).strip()
    return ""


def tool_call(
    call_id: str,
    ranking: dict[str, Any],
    queries: list[str],
    numbered: list[tuple[int, SearchHit]],
) -> dict[str, Any]:
    """A ``file_search`` tool call of a run step; ``queries`` is this server's addition."""
    return {
        "id": call_id,
        "type": NAME,
        "file_search": {
            "ranking_options": ranking,
            "queries": queries,
            "results": [
                {
                    "file_id": hit.file_id,
                    "file_name": hit.filename,
                    "score": round(hit.score, 6),
                    "content": [{"type": "text", "text": hit.text}],
                }
                for _, hit in numbered
            ],
        },
    }


def history_call(call: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A recorded search as the chat tool call and output it was (the one made before the
    model answered reads as if the model had asked for it)."""
    details = call.get(NAME) or {}
    arguments = json.dumps({"queries": details.get("queries") or []})
    chat_call = {
        "id": call["id"],
        "type": "function",
        "function": {"name": NAME, "arguments": arguments},
    }
    listing = "\n\n".join(
        f"(from {r.get('file_name')})\n{''.join(c.get('text', '') for c in r.get('content') or ())}"
        for r in details.get("results") or ()
    )
    return chat_call, listing or Sources.listing([])


def relay_delta(call: ToolCall, delta: dict[str, Any]) -> dict[str, Any] | None:
    """The step delta for a ``file_search`` call's fragment: the call once, no arguments."""
    if call.name != NAME:
        return delta
    call.type = NAME
    if "id" not in delta:
        return None
    return {"index": delta["index"], "id": call.id, "type": NAME, NAME: {}}


@dataclass
class RunSearch:
    """One run's file_search: its stores and options, and the sources it gave the model."""

    store_ids: list[str]
    max_results: int | None
    ranking: dict[str, Any]
    sources: Sources = field(default_factory=Sources)
    citations: Citations = field(init=False)

    def __post_init__(self) -> None:
        self.citations = Citations(self.sources)


class FileSearch(Searcher):
    """One per executor: what runs with file_search need to search."""

    async def before_model(
        self, execution: RunExecution, run: Run, thread: list[Message], body: dict[str, Any]
    ) -> RunSearch | None:
        """Search with the last user message, record the step, add the sources to ``body``
        and offer the model ``file_search``; None when the run has no stores to search."""
        tool = next((t for t in run.tools or [] if t.get("type") == NAME), None)
        if tool is None:
            return None
        async with self.db.read() as session:
            assistant = await session.scalar(
                select(Assistant.tool_resources).where(Assistant.id == run.assistant_id)
            )
            thread_resources = await session.scalar(
                select(Thread.tool_resources).where(Thread.id == run.thread_id)
            )
        store_ids = store_ids_of(thread_resources, assistant)
        if not store_ids:
            return None
        options = tool.get(NAME) or {}
        state = RunSearch(
            store_ids,
            options.get("max_num_results"),
            ranking_options(options.get("ranking_options")),
        )
        _offer(body)
        query = _last_user_text(thread)
        if not query:
            return state
        numbered = state.sources.add(
            await self.search(
                store_ids, [query], max_results=state.max_results, ranking=state.ranking
            )
        )
        call = tool_call(new_id("call_"), state.ranking, [query], numbered)
        await self._record_step(execution, run, call)
        messages = body["messages"]
        last_user = max(
            (i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages)
        )
        messages.insert(last_user, state.sources.message(numbered))
        return state

    async def answer(self, state: RunSearch, call: ToolCall) -> str:
        """Run a model's own ``file_search`` call; records it on the call, returns what the
        model reads."""
        queries = call_queries(call.arguments)
        hits = await self.search(
            state.store_ids, queries, max_results=state.max_results, ranking=state.ranking
        )
        numbered = state.sources.add(hits)
        call.type = NAME
        call.details = tool_call(call.id, state.ranking, queries, numbered)[NAME]
        return state.sources.tool_result(numbered)

    async def _record_step(self, execution: RunExecution, run: Run, call: dict[str, Any]) -> None:
        step = new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": [call]})
        end_step(step, "completed", now())
        # The reply prepared when the run started would list before this step; it goes,
        # and the reply is written after the step, in the order OpenAI's runs show.
        placeholder = execution.turn.placeholder
        execution.turn.placeholder = None
        async with self.db.write() as session:
            for row in placeholder or ():
                await session.delete(await session.merge(row))
            session.add(step)
        shown = step_object(step)
        opened = {**shown, "status": "in_progress", "completed_at": None}
        execution.emit("thread.run.step.created", opened)
        execution.emit("thread.run.step.in_progress", opened)
        delta = {"index": 0, "id": call["id"], "type": NAME, NAME: {}}
        execution.emit(
            "thread.run.step.delta",
            {
                "id": step.id,
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [delta]}},
            },
        )
        execution.emit("thread.run.step.completed", shown)


def _offer(body: dict[str, Any]) -> None:
    """Give the model ``file_search`` as a function it may call with its own queries."""
    tools = body.setdefault("tools", [])
    if any(t["function"]["name"] == NAME for t in tools):
        return
    if not tools:
        body["tool_choice"] = "auto"
        body["parallel_tool_calls"] = True
    tools.append(function_tool())
