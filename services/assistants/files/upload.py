"""POST /v1/files bodies: multipart/form-data parsed as it arrives, the file part streamed
straight into storage and bounded by ``MAX_UPLOAD_BYTES`` while it is read.

Starlette's own form parsing spools every file to a temporary file with no size bound
before the route runs; this parser never holds more than one network chunk in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..errors import InvalidRequest
from .storage import UploadTooLarge, Writer

__all__ = ["MAX_FIELD_BYTES", "UPLOAD_ROUTE", "Upload", "receive_upload"]

# The route that takes bodies up to MAX_UPLOAD_BYTES; a general request-size limit must
# leave it to this module.
UPLOAD_ROUTE = ("POST", "/v1/files")
MAX_FIELD_BYTES = 4096
MAX_PARTS = 16
# Multipart framing around the file (boundaries, part headers, small fields).
FRAMING_ALLOWANCE = 64 * 1024


@dataclass
class Upload:
    """What a multipart upload carried besides the file's bytes."""

    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    size: int = 0
    saw_file: bool = False


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    is_file: bool = False
    value: bytearray = field(default_factory=bytearray)


class _Events:
    """python-multipart's callbacks, collected per network chunk and replayed in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._field = bytearray()
        self._value = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []

    def callbacks(self) -> dict[str, object]:
        def data(kind: str):  # type: ignore[no-untyped-def]
            def on(chunk: bytes, start: int, end: int) -> None:
                self.items.append((kind, chunk[start:end]))

            return on

        def mark(kind: str):  # type: ignore[no-untyped-def]
            def on() -> None:
                self.items.append((kind, b""))

            return on

        return {
            "on_part_begin": mark("part_begin"),
            "on_part_data": data("part_data"),
            "on_part_end": mark("part_end"),
            "on_header_field": data("header_field"),
            "on_header_value": data("header_value"),
            "on_header_end": mark("header_end"),
            "on_headers_finished": mark("headers_finished"),
            "on_end": mark("end"),
        }


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "Files are uploaded as multipart/form-data with a 'file' part and a 'purpose' field."
        )
    return boundary


async def receive_upload(request: Request, writer: Writer, limit: int) -> Upload:
    """Read the request body, writing the ``file`` part to ``writer``; the other parts
    (``purpose``, ``expires_after[...]``) come back as fields."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FRAMING_ALLOWANCE:
        raise UploadTooLarge(limit)  # refused before a byte of it is read
    events = _Events()
    parser = MultipartParser(_boundary(request), events.callbacks())  # type: ignore[arg-type]
    upload = Upload()
    part = _Part()
    parts = 0
    header_field = bytearray()
    header_value = bytearray()
    received = 0
    too_large: UploadTooLarge | None = None
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if too_large is not None:
                # Drop the rest, up to another ``limit`` bytes, so the client hears the
                # 413 rather than a reset; nothing more reaches the disk.
                if received > 2 * limit + FRAMING_ALLOWANCE:
                    break
                continue
            parser.write(chunk)
            for kind, data in events.items:
                if kind == "part_begin":
                    parts += 1
                    if parts > MAX_PARTS:
                        raise InvalidRequest("Too many parts in the multipart body.")
                    part = _Part()
                elif kind == "header_field":
                    header_field += data
                elif kind == "header_value":
                    header_value += data
                elif kind == "header_end":
                    _read_header(part, bytes(header_field), bytes(header_value))
                    header_field.clear()
                    header_value.clear()
                elif kind == "headers_finished":
                    part.is_file = part.name == "file"
                    if part.is_file:
                        if upload.saw_file:
                            raise InvalidRequest("Only one 'file' part may be sent.", param="file")
                        upload.saw_file = True
                        upload.filename = part.filename
                elif kind == "part_data":
                    if part.is_file:
                        try:
                            writer.write(data)
                        except UploadTooLarge as exc:
                            too_large = exc
                            break
                    else:
                        part.value += data
                        if len(part.value) > MAX_FIELD_BYTES:
                            raise InvalidRequest(
                                f"The form field {part.name!r} is too long.", param=part.name
                            )
                elif kind == "part_end" and not part.is_file and part.name:
                    upload.fields[part.name] = part.value.decode("utf-8", "replace")
            events.items.clear()
        if too_large is not None:
            raise too_large
        parser.finalize()
    except ClientDisconnect:
        raise InvalidRequest("The upload ended before its body was complete.") from None
    except MultipartParseError as exc:
        raise InvalidRequest(f"The multipart body could not be parsed: {exc}.") from None
    upload.size = writer.size
    return upload


def _read_header(part: _Part, name: bytes, value: bytes) -> None:
    if name.lower() != b"content-disposition":
        return
    _, options = parse_options_header(value)
    part.name = options.get(b"name", b"").decode("utf-8", "replace")
    if b"filename" in options:
        part.filename = options[b"filename"].decode("utf-8", "replace")
