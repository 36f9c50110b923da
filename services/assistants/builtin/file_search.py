"""file_search as runs and responses both use it: searching vector stores (after waiting,
bounded, for files still being ingested), numbering what was found as sources the model
cites as ``[n]``, offering the search to the model as a function, and turning its ``[n]``
into citations: OpenAI's ``【n†filename】`` markers in runs, indexed annotations in responses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import httpx
from sqlalchemy import func, select

from ..db import Database
from ..errors import APIError
from ..tables import VectorStoreFile
from ..vector_stores.index import VectorCache
from ..vector_stores.search import SearchHit, search

__all__ = [
    "FUNCTION",
    "NAME",
    "Citations",
    "IndexCitations",
    "Searcher",
    "Sources",
    "StoreExpired",
    "call_queries",
    "function_tool",
    "ranking_options",
]

log = logging.getLogger(__name__)

NAME = "file_search"
DEFAULT_MAX_RESULTS = 5
RANKER = "default_2024_08_21"
INSTRUCTIONS = (
    "Answer using the sources below, taken from the user's files. After each statement "
    "that uses a source, cite it by its number in square brackets, like [1]. If the "
    "sources do not contain the answer, say so."
)
FUNCTION = {
    "name": NAME,
    "description": (
        "Search the user's files for passages that answer a question. Give one or more short "
        "search queries; the passages come back numbered: cite them as [1], [2], ..."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Search queries, each a few words.",
            }
        },
        "required": ["queries"],
    },
}


def function_tool() -> dict[str, Any]:
    return {"type": "function", "function": FUNCTION}


def call_queries(arguments: str) -> list[str]:
    """The queries of a model's ``file_search`` call: ``{"queries": [...]}``, a single
    ``{"query": ...}``, or the raw text when the model sent no JSON."""
    try:
        # strict=False: some local models put raw newlines inside JSON strings.
        parsed: Any = json.loads(arguments, strict=False)
    except ValueError:
        parsed = arguments
    if isinstance(parsed, dict):
        parsed = parsed.get("queries", parsed.get("query", ""))
    values = parsed if isinstance(parsed, list) else [parsed]
    return [str(q).strip() for q in values if str(q).strip()][:5]


def ranking_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``ranking_options`` as shown on a step or used to search: a ranker and a threshold."""
    options = options or {}
    ranker = options.get("ranker", "auto")
    return {
        "ranker": RANKER if ranker in (None, "auto") else ranker,
        "score_threshold": float(options.get("score_threshold") or 0.0),
    }


class Sources:
    """What the model was given to cite, numbered from 1 across every search of one run or
    response; a passage found twice keeps its first number."""

    def __init__(self) -> None:
        self.hits: dict[int, SearchHit] = {}
        self._numbers: dict[int, int] = {}

    def add(self, hits: list[SearchHit]) -> list[tuple[int, SearchHit]]:
        numbered = []
        for hit in hits:
            number = self._numbers.get(hit.seq)
            if number is None:
                number = self._numbers[hit.seq] = len(self.hits) + 1
                self.hits[number] = hit
            numbered.append((number, hit))
        return numbered

    @staticmethod
    def listing(numbered: list[tuple[int, SearchHit]]) -> str:
        if not numbered:
            return "No passage in the user's files matches this question."
        return "\n\n".join(f"[{n}] (from {hit.filename})\n{hit.text}" for n, hit in numbered)

    def message(self, numbered: list[tuple[int, SearchHit]]) -> dict[str, Any]:
        """The system message that gives the model sources before it answers."""
        return {
            "role": "system",
            "content": f"{INSTRUCTIONS}\n\nSources:\n\n{self.listing(numbered)}",
        }

    def tool_result(self, numbered: list[tuple[int, SearchHit]]) -> str:
        """What a model's own ``file_search`` call gets back."""
        if not numbered:
            return self.listing(numbered)
        return f"Cite these sources by number, like [1].\n\n{self.listing(numbered)}"


class Citations:
    """Rewrites streamed text: ``[n]`` for a known source becomes ``【n†filename】``, with
    an annotation whose offsets index the rewritten text. A marker split across chunks is
    held back until it is complete."""

    MARKER = re.compile(r"\[(\d{1,3})\]")
    PARTIAL = re.compile(r"\[\d{0,3}$")

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
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

    def _cite(self, number: str, hit: SearchHit, at: int) -> tuple[str, dict[str, Any]]:
        """What replaces a marker found at offset ``at`` of the rewritten text, and its
        annotation."""
        marker = f"【{number}†{hit.filename}】"
        annotation = {
            "type": "file_citation",
            "text": marker,
            "file_citation": {"file_id": hit.file_id},
            "start_index": at,
            "end_index": at + len(marker),
        }
        return marker, annotation

    def _rewrite(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        out: list[str] = []
        added: list[dict[str, Any]] = []
        written = self._length
        last = 0
        for match in self.MARKER.finditer(text):
            hit = self.sources.hits.get(int(match.group(1)))
            if hit is None:
                continue
            before = text[last : match.start()]
            out.append(before)
            written += len(before)
            replacement, annotation = self._cite(match.group(1), hit, written)
            out.append(replacement)
            added.append(annotation)
            written += len(replacement)
            last = match.end()
        out.append(text[last:])
        result = "".join(out)
        self._length += len(result)
        self.annotations += added
        return result, added


class IndexCitations(Citations):
    """The Responses form: the ``[n]`` marker (and the space before it) leaves the text and
    a ``file_citation`` annotation names the file at the offset where it stood."""

    MARKER = re.compile(r"\s*\[(\d{1,3})\]")
    # Trailing whitespace too: it goes if a marker follows.
    PARTIAL = re.compile(r"\s*\[\d{0,3}$|\s+$")

    def _cite(self, number: str, hit: SearchHit, at: int) -> tuple[str, dict[str, Any]]:
        annotation = {
            "type": "file_citation",
            "file_id": hit.file_id,
            "filename": hit.filename,
            "index": at,
        }
        return "", annotation


class StoreExpired(Exception):
    """A store to search has expired: the run or response fails (``invalid_prompt``), as
    OpenAI's runs on a thread whose store expired do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Searcher:
    """Searches vector stores for runs and responses; one per service."""

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

    async def search(
        self,
        store_ids: list[str],
        queries: list[str],
        *,
        max_results: int | None = None,
        ranking: dict[str, Any] | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[SearchHit]:
        """The best passages for ``queries``; none (logged) when the search itself fails,
        so that the model still answers, saying it found nothing."""
        if not store_ids or not queries:
            return []
        await self.wait_for_ingestion(store_ids)
        try:
            return await search(
                self.db,
                self.http,
                self.cache,
                model=self.model,
                store_ids=store_ids,
                queries=queries,
                max_results=max_results or DEFAULT_MAX_RESULTS,
                filters=filters,
                ranking={
                    k: v
                    for k, v in (ranking or {}).items()
                    if k in ("score_threshold", "hybrid_search")
                },
            )
        except APIError as exc:
            if exc.code == "vector_store_expired":
                raise StoreExpired(exc.message) from None
            log.warning("file_search in %s failed: %s", store_ids, exc.message)
            return []

    async def wait_for_ingestion(self, store_ids: list[str]) -> None:
        """Wait, bounded, for files still being ingested into the stores."""
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
