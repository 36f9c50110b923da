"""Where file bytes live: a storage interface, and its local-directory implementation.

Bytes are stored under the file's id, never under the name a client gave, so no name can
reach outside the directory. Writes go to a temporary file first and are renamed into
place once complete and synced, so a crash leaves no half-written file under an id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import APIError

__all__ = ["FileStorage", "LocalFileStorage", "UploadTooLarge", "Writer"]

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class UploadTooLarge(APIError):
    """413: the upload passed ``MAX_UPLOAD_BYTES`` while it was being read."""

    status_code = 413
    error_type = "invalid_request_error"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The file is larger than the maximum upload size of {limit} bytes (MAX_UPLOAD_BYTES).",
            param="file",
            code="file_too_large",
        )


class Writer:
    """An open temporary file counting what it is given against a limit."""

    def __init__(self, handle: BinaryIO, limit: int | None) -> None:
        self._handle = handle
        self._limit = limit
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise UploadTooLarge(self._limit)
        self._handle.write(data)


class FileStorage(Protocol):
    """What the service needs from a place to keep file bytes."""

    def writer(
        self, key: str, limit: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[Writer]:
        """Write a new object; it appears under ``key`` only if the block ends cleanly."""
        ...

    async def put(
        self, key: str, content: bytes | AsyncIterable[bytes], limit: int | None = None
    ) -> int: ...

    def path(self, key: str) -> Path:
        """A local path holding the object's bytes (for streaming responses and readers)."""
        ...

    async def delete(self, key: str) -> None: ...


class LocalFileStorage:
    """Objects as files under ``root``, two levels deep (``root/<last 2 chars>/<key>``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / ".incoming"

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a storage key: {key!r}")
        return self.root / key[-2:] / key

    @asynccontextmanager
    async def writer(self, key: str, limit: int | None = None) -> AsyncIterator[Writer]:
        final = self.path(key)
        self._incoming.mkdir(parents=True, exist_ok=True)
        temporary = self._incoming / f"{uuid.uuid4().hex}.part"
        handle = temporary.open("wb")
        try:
            writer = Writer(handle, limit)
            yield writer
            await asyncio.to_thread(_sync_and_close, handle)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, final)
        finally:
            handle.close()
            temporary.unlink(missing_ok=True)

    async def put(
        self, key: str, content: bytes | AsyncIterable[bytes], limit: int | None = None
    ) -> int:
        """Store ``content`` (bytes or a stream of them) under ``key``; returns its size."""
        async with self.writer(key, limit) as writer:
            if isinstance(content, bytes):
                writer.write(content)
            else:
                async for chunk in content:
                    writer.write(chunk)
        return writer.size

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


def _sync_and_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
