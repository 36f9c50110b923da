"""/v1/files routes. Uploads are parsed as they stream in (``files.upload``), so this
router takes bodies up to MAX_UPLOAD_BYTES whatever limit applies to other routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from ...errors import InvalidRequest
from ...files import records
from ...files.storage import LocalFileStorage
from ...files.upload import receive_upload
from ...pagination import PageParams
from ...schemas.common import Deleted, ListResponse
from ..deps import DatabaseDep, SettingsDep
from ..json_route import JSONRoute
from ..responses import json_response

router = APIRouter(prefix="/files", tags=["files"], route_class=JSONRoute)


async def get_storage(request: Request) -> LocalFileStorage:
    return request.app.state.file_storage


StorageDep = Annotated[LocalFileStorage, Depends(get_storage)]


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: str
    status: str


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(records.UPLOAD_PURPOSES)},
                        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                        "expires_after[seconds]": {"type": "integer"},
                    },
                }
            }
        },
    }
}


@router.post("", response_model=FileObject, openapi_extra=UPLOAD_BODY)
async def upload_file(
    request: Request, db: DatabaseDep, settings: SettingsDep, storage: StorageDep
) -> Any:
    limit = settings.max_upload_bytes
    file_id = records.new_file_id()
    async with storage.writer(file_id, limit) as writer:
        upload = await receive_upload(request, writer, limit)
        if not upload.saw_file:
            raise InvalidRequest("Missing required parameter: 'file'.", param="file")
        purpose = records.check_purpose(upload.fields.get("purpose"))
        expires = _expires_after(upload.fields)
    row = await records.record_file(
        db,
        storage,
        file_id=file_id,
        filename=upload.filename,
        purpose=purpose,
        size=upload.size,
        expires_after_seconds=expires,
    )
    return json_response(records.file_object(row))


def _expires_after(fields: dict[str, str]) -> int | None:
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidRequest(
            "Invalid 'expires_after.anchor': expected 'created_at'.", param="expires_after.anchor"
        )
    low, high = records.EXPIRES_AFTER_SECONDS
    if seconds is None or not seconds.isdigit() or not low <= int(seconds) <= high:
        raise InvalidRequest(
            f"Invalid 'expires_after.seconds': expected an integer from {low} to {high}.",
            param="expires_after.seconds",
        )
    return int(seconds)


@router.get("", response_model=ListResponse[FileObject])
async def list_files(
    db: DatabaseDep,
    purpose: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
) -> Any:
    page = PageParams(limit=limit, order=order, after=after)
    async with db.read() as session:
        return json_response(await records.list_files(session, page, purpose))


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, db: DatabaseDep) -> Any:
    async with db.read() as session:
        return json_response(records.file_object(await records.get_file(session, file_id)))


@router.delete("/{file_id}", response_model=Deleted)
async def delete_file(file_id: str, db: DatabaseDep, storage: StorageDep) -> Any:
    await records.delete_file(db, storage, file_id)
    return json_response({"id": file_id, "object": "file", "deleted": True})


CONTENT_RESPONSE = {
    200: {
        "description": "The file's bytes.",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get("/{file_id}/content", response_class=FileResponse, responses=CONTENT_RESPONSE)
async def file_content(file_id: str, db: DatabaseDep, storage: StorageDep) -> Any:
    async with db.read() as session:
        row = await records.get_file(session, file_id)
    path = storage.path(row.id)
    if not path.exists():
        raise InvalidRequest(f"The content of file '{file_id}' is no longer stored.")
    return FileResponse(path, media_type="application/octet-stream", filename=row.filename)
