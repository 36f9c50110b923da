"""The file_search tool in Responses: the tool's options checked and shown, a search with the
last user message before the model answers (so that small models answer from documents),
and the model's own ``file_search`` calls answered; each search is a ``file_search_call``
output item, and the model's ``[n]`` citations become ``file_citation`` annotations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..builtin.file_search import NAME, Searcher, Sources, call_queries, ranking_options
from ..errors import InvalidRequest, NotFound
from ..ids import new_id
from ..runs.toolcalls import ToolCall
from ..tables import VectorStore
from ..vector_stores.schemas import ComparisonFilter, CompoundFilter, RankingOptions, dump
from ..vector_stores.search import SearchHit
from ..vector_stores.stores import expired_error, is_expired

if TYPE_CHECKING:
    from .execution import ResponseExecution

__all__ = ["NAME", "ResponseSearch", "check_stores", "normalise_tool"]

FIELDS = {"type", "vector_store_ids", "max_num_results", "ranking_options", "filters"}
_FILTERS: TypeAdapter[ComparisonFilter | CompoundFilter] = TypeAdapter(
    ComparisonFilter | CompoundFilter
)


def _invalid(where: str, exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    # A union's member names are not part of the request's path.
    path = ".".join(str(p) for p in first["loc"] if p not in ("ComparisonFilter", "CompoundFilter"))
    param = f"{where}.{path}" if path else where
    return InvalidRequest(f"Invalid '{param}': {first['msg']}.", param=param)


def normalise_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """A ``file_search`` tool as stored and shown; bad options are a 400 naming them."""
    for key in tool:
        if key not in FIELDS:
            raise InvalidRequest(f"Unknown parameter: '{where}.{key}'.", param=f"{where}.{key}")
    ids = tool.get("vector_store_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        param = f"{where}.vector_store_ids"
        raise InvalidRequest(
            f"Missing required parameter: '{param}' (a list of vector store ids).", param=param
        )
    shown: dict[str, Any] = {"type": NAME, "vector_store_ids": list(dict.fromkeys(ids))}
    limit = tool.get("max_num_results")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            param = f"{where}.max_num_results"
            raise InvalidRequest(f"Invalid '{param}': expected 1 to 50.", param=param)
        shown["max_num_results"] = limit
    if tool.get("ranking_options") is not None:
        try:
            ranking = RankingOptions.model_validate(tool["ranking_options"])
        except ValidationError as exc:
            raise _invalid(f"{where}.ranking_options", exc) from None
        shown["ranking_options"] = dump(ranking)
    shown["filters"] = None
    if tool.get("filters") is not None:
        try:
            shown["filters"] = dump(_FILTERS.validate_python(tool["filters"]))
        except ValidationError as exc:
            raise _invalid(f"{where}.filters", exc) from None
    return shown


async def check_stores(session: AsyncSession, tools: list[dict[str, Any]]) -> None:
    """Every store a file_search tool names exists and has not expired."""
    for i, tool in enumerate(tools):
        if tool.get("type") != NAME:
            continue
        ids = tool["vector_store_ids"]
        found = {
            row.id: row
            for row in await session.execute(
                select(VectorStore.id, VectorStore.expires_at).where(VectorStore.id.in_(ids))
            )
        }
        for j, store_id in enumerate(ids):
            param = f"tools[{i}].vector_store_ids[{j}]"
            if store_id not in found:
                raise NotFound(
                    f"No vector store found with id '{store_id}'.", param=param, code="not_found"
                )
            if is_expired(found[store_id]):
                raise expired_error(store_id, param)


def _results(numbered: list[tuple[int, SearchHit]]) -> list[dict[str, Any]]:
    return [
        {
            "file_id": hit.file_id,
            "filename": hit.filename,
            "score": round(hit.score, 6),
            "text": hit.text,
            "attributes": hit.attributes,
        }
        for _, hit in numbered
    ]


def _last_user_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    return "\n".join(p.get("text", "") for p in content or () if p.get("type") == "text").strip()


class ResponseSearch:
    """One response's file_search: its stores and options, and the sources the model got."""

    def __init__(self, searcher: Searcher, tool: dict[str, Any]) -> None:
        self.searcher = searcher
        self.store_ids: list[str] = tool["vector_store_ids"]
        self.max_results: int | None = tool.get("max_num_results")
        self.ranking = {
            **(tool.get("ranking_options") or {}),
            **ranking_options(tool.get("ranking_options")),
        }
        self.filters: dict[str, Any] | None = tool.get("filters")
        self.sources = Sources()

    @classmethod
    def of(cls, searcher: Searcher | None, tools: list[dict[str, Any]]) -> ResponseSearch | None:
        tool = next((t for t in tools if t.get("type") == NAME), None)
        return cls(searcher, tool) if tool is not None and searcher is not None else None

    @staticmethod
    def new_item() -> dict[str, Any]:
        return {
            "id": new_id("fs_"),
            "type": "file_search_call",
            "status": "in_progress",
            "queries": [],
            "results": None,
        }

    async def _run(
        self, execution: ResponseExecution, index: int, item: dict[str, Any], queries: list[str]
    ) -> list[tuple[int, SearchHit]]:
        """Search and complete the item, with its events."""
        common = {"output_index": index, "item_id": item["id"]}
        item["queries"] = queries
        item["status"] = "searching"
        execution.emit("response.file_search_call.searching", **common)
        hits = await self.searcher.search(
            self.store_ids,
            queries,
            max_results=self.max_results,
            ranking=self.ranking,
            filters=self.filters,
        )
        numbered = self.sources.add(hits)
        item["results"] = _results(numbered)
        item["status"] = "completed"
        execution.emit("response.file_search_call.completed", **common)
        execution.finish_item(index, item)
        return numbered

    async def before_model(self, execution: ResponseExecution, body: dict[str, Any]) -> None:
        """When the model is to answer a user message: search with it first, and give the
        model what was found as numbered sources."""
        messages = body["messages"]
        if not messages or messages[-1].get("role") != "user":
            return  # a tool output goes back: the turn's search was made already
        query = _last_user_text(messages[-1])
        if not query:
            return
        item = self.new_item()
        index = execution.add_item(item)
        common = {"output_index": index, "item_id": item["id"]}
        execution.emit("response.file_search_call.in_progress", **common)
        numbered = await self._run(execution, index, item, [query])
        messages.insert(len(messages) - 1, self.sources.message(numbered))

    async def answer(
        self, execution: ResponseExecution, index: int, item: dict[str, Any], call: ToolCall
    ) -> str:
        """A model's own ``file_search`` call: search with its queries; what it reads back."""
        numbered = await self._run(execution, index, item, call_queries(call.arguments))
        return self.sources.tool_result(numbered)
