"""The file_search tool in runs: before the model answers, search the run's vector stores
with the conversation's last user message, record a ``file_search`` tool-call step, give
the model the results as numbered sources, and turn its ``[n]`` citations into OpenAI's
``【n†filename】`` markers with ``file_citation`` annotations at exact offsets."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import func, select

from ..clock import now
from ..db import Database
from ..domain.runs import end_step, step_object
from ..errors import APIError
from ..ids import new_id
from ..tables import Assistant, Message, Run, Thread, VectorStoreFile
from ..vector_stores.index import VectorCache
from ..vector_stores.search import SearchHit, search
from .objects import new_step

if TYPE_CHECKING:
    from .execution import RunExecution

__all__ = ["Citations", "FileSearch", "StoreExpired", "store_ids_of"]

log = logging.getLogger(__name__)

DEFAULT_MAX_RESULTS = 5
RANKER = "default_2024_08_21"
INSTRUCTIONS = (
    "Answer using the sources below, taken from the user's files. After each statement "
    "that uses a source, cite it by its number in square brackets, like [1]. If the "
    "sources do not contain the answer, say so."
)


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


class Citations:
    """Rewrites streamed text: ``[n]`` for a known source becomes ``【n†filename】``, with
    an annotation whose offsets index the rewritten text. A marker split across chunks is
    held back until it is complete."""

    MARKER = re.compile(r"\[(\d{1,3})\]")
    PARTIAL = re.compile(r"\[\d{0,3}$")

    def __init__(self, sources: list[SearchHit]) -> None:
        self.sources = {n: hit for n, hit in enumerate(sources, start=1)}
        self.annotations: list[dict[str, Any]] = []
        self._pending = ""
        self._length = 0

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        buffered = self._pending + text
        partial = self.PARTIAL.search(buffered)
        cut = partial.start() if partial else len(buffered)
        self._pending = buffered[cut:]
        return self._rewrite(buffered[:cut])

    def flush(self) -> tuple[str, list[dict[str, Any]]]:
        rest, self._pending = self._pending, ""
        return self._rewrite(rest)

    def _rewrite(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        out: list[str] = []
        added: list[dict[str, Any]] = []
        written = self._length
        last = 0
        for match in self.MARKER.finditer(text):
            hit = self.sources.get(int(match.group(1)))
            if hit is None:
                continue
            before = text[last : match.start()]
            out.append(before)
            written += len(before)
            marker = f"【{match.group(1)}†{hit.filename}】"
            out.append(marker)
            added.append(
                {
                    "type": "file_citation",
                    "text": marker,
                    "file_citation": {"file_id": hit.file_id},
                    "start_index": written,
                    "end_index": written + len(marker),
                }
            )
            written += len(marker)
            last = match.end()
        out.append(text[last:])
        result = "".join(out)
        self._length += len(result)
        self.annotations += added
        return result, added


@dataclass
class Retrieval:
    hits: list[SearchHit]
    ranking: dict[str, Any]
    citations: Citations = field(init=False)

    def __post_init__(self) -> None:
        self.citations = Citations(self.hits)

    def tool_call(self) -> dict[str, Any]:
        return {
            "id": new_id("call_"),
            "type": "file_search",
            "file_search": {
                "ranking_options": self.ranking,
                "results": [
                    {
                        "file_id": hit.file_id,
                        "file_name": hit.filename,
                        "score": round(hit.score, 6),
                        "content": [{"type": "text", "text": hit.text}],
                    }
                    for hit in self.hits
                ],
            },
        }

    def sources_message(self) -> dict[str, Any]:
        if not self.hits:
            body = "No passage in the user's files matches this question."
        else:
            body = "\n\n".join(
                f"[{n}] (from {hit.filename})\n{hit.text}"
                for n, hit in enumerate(self.hits, start=1)
            )
        return {"role": "system", "content": f"{INSTRUCTIONS}\n\nSources:\n\n{body}"}


class StoreExpired(Exception):
    """A store the run would search has expired: the run fails (``invalid_prompt``), as
    OpenAI's runs on a thread whose store expired do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FileSearch:
    """One per executor: what runs with file_search need to search."""

    def __init__(
        self,
        *,
        db: Database,
        http: httpx.AsyncClient,
        cache: VectorCache,
        model: str,
        wait_seconds: float = 60.0,
    ) -> None:
        self.db = db
        self.http = http
        self.cache = cache
        self.model = model
        self.wait_seconds = wait_seconds

    async def before_model(
        self, execution: RunExecution, run: Run, thread: list[Message], body: dict[str, Any]
    ) -> Citations | None:
        """Search, record the step and add the sources to ``body``; None when the run has
        no file_search or nothing to search."""
        tool = next((t for t in run.tools or [] if t.get("type") == "file_search"), None)
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
        query = _last_user_text(thread)
        if not store_ids or not query:
            return None
        await self._wait_for_ingestion(store_ids)
        options = tool.get("file_search") or {}
        ranking_in = options.get("ranking_options") or {}
        ranking = {
            "ranker": RANKER
            if ranking_in.get("ranker", "auto") == "auto"
            else ranking_in["ranker"],
            "score_threshold": float(ranking_in.get("score_threshold", 0.0)),
        }
        try:
            hits = await search(
                self.db,
                self.http,
                self.cache,
                model=self.model,
                store_ids=store_ids,
                queries=[query],
                max_results=int(options.get("max_num_results") or DEFAULT_MAX_RESULTS),
                ranking={"score_threshold": ranking["score_threshold"]},
            )
        except APIError as exc:
            if exc.code == "vector_store_expired":
                raise StoreExpired(exc.message) from None
            log.warning("run %s: file_search failed: %s", run.id, exc.message)
            hits = []
        retrieval = Retrieval(hits, ranking)
        await self._record_step(execution, run, retrieval)
        messages = body["messages"]
        last_user = max(
            (i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages)
        )
        messages.insert(last_user, retrieval.sources_message())
        return retrieval.citations

    async def _wait_for_ingestion(self, store_ids: list[str]) -> None:
        """A run waits, bounded, for files still being ingested into its stores."""
        deadline = time.monotonic() + self.wait_seconds
        while time.monotonic() < deadline:
            async with self.db.read() as session:
                pending = await session.scalar(
                    select(func.count()).where(
                        VectorStoreFile.vector_store_id.in_(store_ids),
                        VectorStoreFile.status == "in_progress",
                    )
                )
            if not pending:
                return
            await asyncio.sleep(0.25)

    async def _record_step(self, execution: RunExecution, run: Run, retrieval: Retrieval) -> None:
        call = retrieval.tool_call()
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
        delta = {"index": 0, "id": call["id"], "type": "file_search", "file_search": {}}
        execution.emit(
            "thread.run.step.delta",
            {
                "id": step.id,
                "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [delta]}},
            },
        )
        execution.emit("thread.run.step.completed", shown)
