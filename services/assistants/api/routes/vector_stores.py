"""/v1/vector_stores routes: stores, their files and file batches, and search."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from ...errors import InvalidRequest
from ...files.records import get_file
from ...ingestion.extract import ExtractionError, extract_text
from ...schemas.common import Deleted, ListResponse
from ...vector_stores import store_files, stores
from ...vector_stores.schemas import (
    AttributesUpdate,
    FileBatchCreate,
    SearchRequest,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreModify,
    dump,
)
from ...vector_stores.search import search
from ..deps import DatabaseDep, PageDep, SettingsDep
from ..json_route import JSONRoute
from ..responses import json_response

router = APIRouter(prefix="/vector_stores", tags=["vector_stores"], route_class=JSONRoute)


class FileCounts(BaseModel):
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int


class VectorStoreObject(BaseModel):
    id: str
    object: Literal["vector_store"] = "vector_store"
    created_at: int
    name: str
    usage_bytes: int
    file_counts: FileCounts
    status: str
    expires_after: dict[str, Any] | None = None
    expires_at: int | None
    last_active_at: int | None
    metadata: dict[str, str]


class VectorStoreFileObject(BaseModel):
    id: str
    object: Literal["vector_store.file"] = "vector_store.file"
    usage_bytes: int
    created_at: int
    vector_store_id: str
    status: str
    last_error: dict[str, str] | None
    chunking_strategy: dict[str, Any]
    attributes: dict[str, Any]


class FileBatchObject(BaseModel):
    id: str
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"
    created_at: int
    vector_store_id: str
    status: str
    file_counts: FileCounts


class ContentPart(BaseModel):
    type: str
    text: str


class FileContentPage(BaseModel):
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"
    data: list[ContentPart]
    has_more: bool
    next_page: str | None


class SearchResult(BaseModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any]
    content: list[ContentPart]


class SearchResultsPage(BaseModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResult]
    has_more: bool
    next_page: str | None


# -- stores -------------------------------------------------------------------------------


@router.post("", response_model=VectorStoreObject)
async def create_vector_store(body: VectorStoreCreate, db: DatabaseDep) -> Any:
    async with db.write() as session:
        row = await stores.create_store(session, body)
        return json_response(await stores.shaped(session, row))


@router.get("", response_model=ListResponse[VectorStoreObject])
async def list_vector_stores(db: DatabaseDep, page: PageDep) -> Any:
    async with db.read() as session:
        return json_response(await stores.list_stores(session, page))


@router.get("/{vector_store_id}", response_model=VectorStoreObject)
async def retrieve_vector_store(vector_store_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        row = await stores.get_store(session, vector_store_id)
        return json_response(await stores.shaped(session, row))


@router.post("/{vector_store_id}", response_model=VectorStoreObject)
async def modify_vector_store(
    vector_store_id: str, body: VectorStoreModify, db: DatabaseDep
) -> Any:
    async with db.write() as session:
        row = await stores.modify_store(session, vector_store_id, body)
        return json_response(await stores.shaped(session, row))


@router.delete("/{vector_store_id}", response_model=Deleted)
async def delete_vector_store(vector_store_id: str, db: DatabaseDep, request: Request) -> Any:
    async with db.write() as session:
        await stores.delete_store(session, vector_store_id)
    request.app.state.vector_cache.forget(vector_store_id)
    return json_response({"id": vector_store_id, "object": "vector_store.deleted", "deleted": True})


# -- files in a store ---------------------------------------------------------------------


async def _store(session: Any, store_id: str) -> None:
    await stores.get_store(session, store_id)


@router.post("/{vector_store_id}/files", response_model=VectorStoreFileObject)
async def create_vector_store_file(
    vector_store_id: str, body: VectorStoreFileCreate, db: DatabaseDep
) -> Any:
    async with db.write() as session:
        await stores.use_store(session, vector_store_id)
        [added] = await store_files.add_files(
            session,
            vector_store_id,
            [(body.file_id, body.attributes)],
            dump(body.chunking_strategy),
        )
        return json_response(store_files.store_file_object(added))


@router.get("/{vector_store_id}/files", response_model=ListResponse[VectorStoreFileObject])
async def list_vector_store_files(
    vector_store_id: str,
    db: DatabaseDep,
    page: PageDep,
    filter: Annotated[
        Literal["in_progress", "completed", "failed", "cancelled"] | None, Query()
    ] = None,
) -> Any:
    async with db.read() as session:
        await _store(session, vector_store_id)
        return json_response(
            await store_files.list_store_files(session, vector_store_id, page, status=filter)
        )


@router.get("/{vector_store_id}/files/{file_id}", response_model=VectorStoreFileObject)
async def retrieve_vector_store_file(vector_store_id: str, file_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        row = await store_files.get_store_file(session, vector_store_id, file_id)
        return json_response(store_files.store_file_object(row))


@router.post("/{vector_store_id}/files/{file_id}", response_model=VectorStoreFileObject)
async def update_vector_store_file(
    vector_store_id: str, file_id: str, body: AttributesUpdate, db: DatabaseDep
) -> Any:
    async with db.write() as session:
        row = await store_files.update_attributes(
            session, vector_store_id, file_id, body.attributes
        )
        return json_response(store_files.store_file_object(row))


@router.delete("/{vector_store_id}/files/{file_id}", response_model=Deleted)
async def delete_vector_store_file(vector_store_id: str, file_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        await store_files.remove_store_file(session, vector_store_id, file_id)
    return json_response({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})


@router.get("/{vector_store_id}/files/{file_id}/content", response_model=FileContentPage)
async def vector_store_file_content(
    vector_store_id: str, file_id: str, db: DatabaseDep, request: Request
) -> Any:
    async with db.read() as session:
        await store_files.get_store_file(session, vector_store_id, file_id)
        row = await get_file(session, file_id)
    path = request.app.state.file_storage.path(file_id)
    try:
        data = await asyncio.to_thread(path.read_bytes)
        text = await asyncio.to_thread(extract_text, row.filename, data)
    except (OSError, ExtractionError):
        text = ""
    parts = [{"type": "text", "text": text}] if text else []
    return json_response(
        {
            "object": "vector_store.file_content.page",
            "data": parts,
            "has_more": False,
            "next_page": None,
        }
    )


# -- file batches -------------------------------------------------------------------------


async def _batch_response(session: Any, batch: Any) -> Any:
    counts = await store_files.batch_counts(session, batch.id)
    return json_response(store_files.batch_object(batch, counts))


@router.post("/{vector_store_id}/file_batches", response_model=FileBatchObject)
async def create_file_batch(vector_store_id: str, body: FileBatchCreate, db: DatabaseDep) -> Any:
    files: list[tuple[str, dict[str, Any] | None]] = [(fid, None) for fid in body.file_ids or []]
    files += [(f.file_id, f.attributes) for f in body.files or []]
    async with db.write() as session:
        await stores.use_store(session, vector_store_id)
        batch = await store_files.create_batch(
            session, vector_store_id, files, dump(body.chunking_strategy), body.attributes
        )
        return await _batch_response(session, batch)


@router.get("/{vector_store_id}/file_batches/{batch_id}", response_model=FileBatchObject)
async def retrieve_file_batch(vector_store_id: str, batch_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        batch = await store_files.get_batch(session, vector_store_id, batch_id)
        return await _batch_response(session, batch)


@router.post("/{vector_store_id}/file_batches/{batch_id}/cancel", response_model=FileBatchObject)
async def cancel_file_batch(vector_store_id: str, batch_id: str, db: DatabaseDep) -> Any:
    async with db.write() as session:
        batch = await store_files.cancel_batch(session, vector_store_id, batch_id)
        return await _batch_response(session, batch)


@router.get(
    "/{vector_store_id}/file_batches/{batch_id}/files",
    response_model=ListResponse[VectorStoreFileObject],
)
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    db: DatabaseDep,
    page: PageDep,
    filter: Annotated[
        Literal["in_progress", "completed", "failed", "cancelled"] | None, Query()
    ] = None,
) -> Any:
    async with db.read() as session:
        await store_files.get_batch(session, vector_store_id, batch_id)
        return json_response(
            await store_files.list_store_files(
                session, vector_store_id, page, status=filter, batch_id=batch_id
            )
        )


# -- search -------------------------------------------------------------------------------


@router.post("/{vector_store_id}/search", response_model=SearchResultsPage)
async def search_vector_store(
    vector_store_id: str,
    body: SearchRequest,
    db: DatabaseDep,
    settings: SettingsDep,
    request: Request,
) -> Any:
    queries = [body.query] if isinstance(body.query, str) else list(body.query)
    queries = [q for q in queries if q.strip()]
    if not queries:
        raise InvalidRequest("Invalid 'query': it must not be empty.", param="query")
    hits = await search(
        db,
        request.app.state.http,
        request.app.state.vector_cache,
        model=settings.embedding_model,
        store_ids=[vector_store_id],
        queries=queries,
        max_results=body.max_num_results,
        filters=dump(body.filters),
        ranking=dump(body.ranking_options),
    )
    return json_response(
        {
            "object": "vector_store.search_results.page",
            "search_query": queries,
            "data": [hit.result() for hit in hits],
            "has_more": False,
            "next_page": None,
        }
    )
