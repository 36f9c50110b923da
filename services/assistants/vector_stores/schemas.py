"""Request bodies of the vector store routes, as OpenAI's reference defines them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from ..schemas.common import Metadata, Request

MAX_ATTRIBUTES = 16


def _check_attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes are allowed")
    for key, item in value.items():
        if len(key) > 64:
            raise ValueError(f"attribute name {key[:20]!r}… is longer than 64 characters")
        if isinstance(item, str) and len(item) > 512:
            raise ValueError(f"attribute {key!r} is longer than 512 characters")
        if not isinstance(item, str | int | float | bool):
            raise ValueError(f"attribute {key!r} must be a string, a number or a boolean")
    return value


Attributes = Annotated[dict[str, Any] | None, AfterValidator(_check_attributes)]


class StaticChunking(Request):
    max_chunk_size_tokens: int = Field(ge=100, le=4096)
    chunk_overlap_tokens: int = Field(ge=0)

    @model_validator(mode="after")
    def _overlap_at_most_half(self) -> StaticChunking:
        if self.chunk_overlap_tokens > self.max_chunk_size_tokens // 2:
            raise ValueError("chunk_overlap_tokens must not exceed half of max_chunk_size_tokens")
        return self


class AutoStrategy(Request):
    type: Literal["auto"]


class StaticStrategy(Request):
    type: Literal["static"]
    static: StaticChunking


ChunkingStrategy = Annotated[AutoStrategy | StaticStrategy, Field(discriminator="type")]


class ExpiresAfter(Request):
    anchor: Literal["last_active_at"]
    days: int = Field(ge=1, le=365)


class VectorStoreCreate(Request):
    file_ids: list[str] = Field(default_factory=list, max_length=500)
    name: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    expires_after: ExpiresAfter | None = None
    chunking_strategy: ChunkingStrategy | None = None
    metadata: Metadata | None = None


class VectorStoreModify(Request):
    name: str | None = Field(default=None, max_length=256)
    expires_after: ExpiresAfter | None = None
    metadata: Metadata | None = None


class VectorStoreFileCreate(Request):
    file_id: str = Field(min_length=1, max_length=64)
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes = None


class FileBatchCreate(Request):
    file_ids: list[str] | None = Field(default=None, min_length=1, max_length=2000)
    files: list[VectorStoreFileCreate] | None = Field(default=None, min_length=1, max_length=2000)
    chunking_strategy: ChunkingStrategy | None = None
    attributes: Attributes = None

    @model_validator(mode="after")
    def _some_files(self) -> FileBatchCreate:
        if not self.file_ids and not self.files:
            raise ValueError("give file_ids or files")
        return self


class AttributesUpdate(Request):
    attributes: Attributes


class ComparisonFilter(Request):
    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"] = "eq"
    key: str
    value: str | float | bool | list[str | float]


class CompoundFilter(Request):
    type: Literal["and", "or"]
    filters: list[ComparisonFilter | CompoundFilter]


class RankingOptions(Request):
    ranker: Literal["none", "auto", "default-2024-11-15"] = "auto"
    score_threshold: float = Field(default=0.0, ge=0, le=1)
    hybrid_search: dict[str, float] | None = None


class SearchRequest(Request):
    query: str | list[str]
    rewrite_query: bool = False
    max_num_results: int = Field(default=10, ge=1, le=50)
    filters: ComparisonFilter | CompoundFilter | None = None
    ranking_options: RankingOptions | None = None

    @model_validator(mode="after")
    def _query_given(self) -> SearchRequest:
        queries = [self.query] if isinstance(self.query, str) else self.query
        if not queries or not any(q.strip() for q in queries):
            raise ValueError("query must not be empty")
        return self


def dump(value: BaseModel | None) -> dict[str, Any] | None:
    return None if value is None else value.model_dump(mode="json", exclude_none=True)
