"""Files: create from bytes or a stream, read, list, open, delete. What routes and the run
executor's tools call; the bytes go through a ``LocalFileStorage``, the rows through
SQLAlchemy."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..clock import now
from ..db import Database
from ..errors import InvalidRequest, not_found
from ..ids import new_id
from ..pagination import PageParams, fetch_page
from ..tables import File
from .storage import LocalFileStorage

__all__ = [
    "PURPOSES",
    "UPLOAD_PURPOSES",
    "clean_filename",
    "create_file",
    "delete_file",
    "file_object",
    "get_file",
    "list_files",
    "open_file",
    "read_file",
    "record_file",
]

# What a client may upload with; the service itself also writes ``assistants_output``
# (files a tool produced).
UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data")
PURPOSES = (*UPLOAD_PURPOSES, "assistants_output")
MAX_FILENAME = 512
# OpenAI's bounds on a file's expires_after.seconds: one hour to thirty days.
EXPIRES_AFTER_SECONDS = (3600, 2_592_000)


def file_object(row: Any) -> dict[str, Any]:
    shaped = {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": row.created_at,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
    }
    if row.expires_at is not None:  # the reference has it an integer when present
        shaped["expires_at"] = row.expires_at
    return shaped


def clean_filename(name: str | None) -> str:
    """The last path part of a client's name (``../../etc/passwd`` -> ``passwd``): only
    ever a label, but one that should not pretend to be a path."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "").strip()
    if base in ("", ".", ".."):
        base = "upload"
    return base[:MAX_FILENAME]


def check_purpose(purpose: str | None, allowed: tuple[str, ...] = UPLOAD_PURPOSES) -> str:
    if not purpose:
        raise InvalidRequest("Missing required parameter: 'purpose'.", param="purpose")
    if purpose not in allowed:
        raise InvalidRequest(
            f"Invalid 'purpose': {purpose!r}; expected one of {', '.join(allowed)}.",
            param="purpose",
        )
    return purpose


async def create_file(
    db: Database,
    storage: LocalFileStorage,
    *,
    filename: str,
    purpose: str,
    content: bytes | AsyncIterable[bytes],
    limit: int | None = None,
    expires_after_seconds: int | None = None,
) -> File:
    """Store ``content`` and record it; the row appears once the bytes are safely stored.

    ``limit`` bounds a stream while it is read (``UploadTooLarge``).
    """
    check_purpose(purpose, PURPOSES)
    file_id = new_file_id()
    size = await storage.put(file_id, content, limit)
    return await record_file(
        db,
        storage,
        file_id=file_id,
        filename=filename,
        purpose=purpose,
        size=size,
        expires_after_seconds=expires_after_seconds,
    )


def new_file_id() -> str:
    return new_id("file-")


async def record_file(
    db: Database,
    storage: LocalFileStorage,
    *,
    file_id: str,
    filename: str | None,
    purpose: str,
    size: int,
    expires_after_seconds: int | None = None,
) -> File:
    """The row for bytes already stored under ``file_id``; they go if the row cannot."""
    created = now()
    row = File(
        id=file_id,
        created_at=created,
        filename=clean_filename(filename),
        purpose=purpose,
        bytes=size,
        status="processed",
        expires_at=None if expires_after_seconds is None else created + expires_after_seconds,
        metadata_={},
    )
    try:
        async with db.write() as session:
            session.add(row)
    except BaseException:
        await storage.delete(file_id)
        raise
    return row


async def get_file(session: AsyncSession, file_id: str) -> File:
    row = await session.scalar(select(File).where(File.id == file_id))
    if row is None:
        raise not_found("file", file_id, "file_id")
    return row


async def list_files(
    session: AsyncSession, params: PageParams, purpose: str | None = None
) -> dict[str, Any]:
    scope = {"purpose": purpose} if purpose else {}
    return await fetch_page(session, File, params, scope, file_object)


def open_file(storage: LocalFileStorage, row: File) -> BinaryIO:
    """The file's bytes, opened for reading (the caller closes it)."""
    return storage.path(row.id).open("rb")


async def read_file(db: Database, storage: LocalFileStorage, file_id: str) -> tuple[File, bytes]:
    """A file's row and all its bytes (for files small enough to hold in memory)."""
    async with db.read() as session:
        row = await get_file(session, file_id)
    with open_file(storage, row) as handle:
        return row, handle.read()


async def delete_file(db: Database, storage: LocalFileStorage, file_id: str) -> None:
    """Remove the row, then the bytes (a crash between leaves only unreachable bytes)."""
    async with db.write() as session:
        await before_delete(session, file_id)
        result = await session.execute(delete(File).where(File.id == file_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise not_found("file", file_id, "file_id")
    await storage.delete(file_id)


async def before_delete(session: AsyncSession, file_id: str) -> None:
    """What must go with a file in the same transaction (its place in vector stores)."""
