"""uvicorn's httptools protocol with deadlines for requests that never finish arriving, a
bound on header size, and protocol errors answered in OpenAI's error shape.

uvicorn times only the pause between kept-alive requests: a connection that sends nothing,
half its headers, or stops sending a body the server no longer reads, is held open forever.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orjson import dumps
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings
from .errors import error_body

__all__ = ["MAX_HEADER_BYTES", "guarded_protocol"]

# The request line and headers together; what clients send is a few hundred bytes.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(Exception):
    """The request line and headers passed ``MAX_HEADER_BYTES``."""


def _error_response(status: int, reason: str, message: str, code: str) -> bytes:
    body = dumps(error_body(message, "invalid_request_error", code=code))
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Headers must arrive within ``header_timeout`` of the connection (or of the previous
    response); the rest of a body refused before it was read is dropped for at most
    ``drain_timeout``, so the client still hears the answer, then the connection closes."""

    header_timeout = 5.0
    drain_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            # Raised inside the parser, which stops and reports it through send_400_response.
            raise HeadersTooLarge

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0
        if self._deadline is None or self.cycle is not None:
            # A new request on a kept-alive connection: its headers get the full time.
            self._arm(self.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.cycle is not None and self.cycle.response_complete:
            self._disarm()  # the dropped rest of a refused body has all arrived
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self._arm(self.drain_timeout, self._close)

    def send_400_response(self, msg: str) -> None:
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"The request line and headers are larger than {MAX_HEADER_BYTES} bytes.",
                "headers_too_large",
            )
        else:
            self._refuse(400, "Bad Request", "The request is not valid HTTP/1.1.", "invalid_http")

    def _headers_late(self) -> None:
        self._deadline = None
        if self._in_headers:
            self._refuse(
                408,
                "Request Timeout",
                f"The request headers did not arrive within {self.header_timeout:g} seconds.",
                "request_timeout",
            )
        else:
            self._close()  # nothing asked on this connection: nobody to answer

    def _refuse(self, status: int, reason: str, message: str, code: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_error_response(status, reason, message, code))
            self.transport.close()

    def _close(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for uvicorn's ``http=``, with the settings' deadlines."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "header_timeout": settings.request_header_timeout,
            "drain_timeout": settings.request_body_timeout,
        },
    )
