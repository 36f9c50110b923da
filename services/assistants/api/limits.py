"""Request limits enforced in front of the routes, before a body is read: the key first,
then a body size per route, and a deadline for a body that never finishes arriving.

A request refused here costs what its headers cost: its body is never read (the server
drops what still arrives, see ``http_protocol``), so no size of body allocates memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from orjson import dumps
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from ..config import Settings
from ..errors import error_body
from .deps import access_error

__all__ = ["BodyLimit", "BodyLimits", "BodyRefused", "RequestGuard", "body_limits"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Multipart framing around an upload's file: boundaries, part headers, small fields.
UPLOAD_FRAMING_BYTES = 64 * 1024


@dataclass(frozen=True)
class BodyLimit:
    """How large a route's body may be. A ``streamed`` body (an upload the route writes
    out as it arrives) may take as long as it needs, pausing no longer than the timeout;
    any other body must arrive whole within it."""

    max_bytes: int
    streamed: bool = False


@dataclass(frozen=True)
class BodyLimits:
    """The table: each (method, path) its own limit, every other request the default."""

    default: BodyLimit
    routes: Mapping[tuple[str, str], BodyLimit] = field(default_factory=dict)

    def for_request(self, method: str, path: str) -> BodyLimit:
        return self.routes.get((method, path), self.default)


def body_limits(settings: Settings) -> BodyLimits:
    """JSON bodies up to MAX_BODY_BYTES; an upload to POST /v1/files up to its own
    MAX_UPLOAD_BYTES (the route enforces the exact figure as it writes the file)."""
    upload = BodyLimit(settings.max_upload_bytes + UPLOAD_FRAMING_BYTES, streamed=True)
    return BodyLimits(BodyLimit(settings.max_body_bytes), {("POST", "/v1/files"): upload})


class BodyRefused(HTTPException):
    """A body over its limit (413) or not arriving in time (408). Raised from ``receive``,
    so whatever was reading the body stops; rendered in OpenAI's shape."""

    def __init__(self, status_code: int, message: str, code: str) -> None:
        super().__init__(status_code, message)
        self.code = code
        if status_code == 408:
            # The client stalled mid-body: nothing more on this connection can be trusted.
            self.headers = {"Connection": "close"}

    def body(self) -> dict[str, Any]:
        return error_body(str(self.detail), "invalid_request_error", None, self.code)


def too_large(limit: int) -> BodyRefused:
    return BodyRefused(
        413,
        f"The request body is larger than this endpoint accepts ({limit} bytes).",
        "request_too_large",
    )


def timed_out(seconds: float) -> BodyRefused:
    return BodyRefused(
        408,
        f"The request body did not arrive within {seconds:g} seconds.",
        "request_timeout",
    )


async def respond(
    send: Send, status: int, content: dict[str, Any], headers: Mapping[str, str] | None = None
) -> None:
    body = dumps(content)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: the key on /v1, then the route's body limit and deadline."""

    def __init__(self, app: ASGIApp, *, settings: Settings, limits: BodyLimits) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path: str = scope["path"]
        if path == "/v1" or path.startswith("/v1/"):
            error = access_error(headers, self.settings)
            if error is not None:
                await respond(send, error.status_code, error.body())
                return
        limit = self.limits.for_request(scope["method"], path)
        declared = headers.getlist("content-length")
        if declared and not all(v.strip().isdigit() for v in declared):
            await respond(
                send,
                400,
                error_body("The Content-Length header is not a number.", "invalid_request_error"),
                {"Connection": "close"},
            )
            return
        if declared and max(int(v) for v in declared) > limit.max_bytes:
            refused = too_large(limit.max_bytes)
            await respond(send, refused.status_code, refused.body())
            return
        body = _GuardedBody(receive, send, limit, self.settings.request_body_timeout)
        try:
            await self.app(scope, body.receive, body.send)
        except BodyRefused as exc:
            # Raised past every handler (a background reader, say): answer if still possible.
            if not body.started:
                await respond(send, exc.status_code, exc.body(), exc.headers)


class _GuardedBody:
    """``receive`` and ``send`` for one request: the body counted and timed as it arrives;
    once it is refused, the refusal is the response, whatever the route made of it."""

    def __init__(self, receive: Receive, send: Send, limit: BodyLimit, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.timeout = timeout
        self.deadline = None if limit.streamed else time.monotonic() + timeout
        self.received = 0
        self.complete = False
        self.refusal: BodyRefused | None = None
        self.started = False
        self.replaced = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()  # after the body: waiting for a disconnect
        if self.refusal is not None:
            raise self.refusal
        wait = self.timeout
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                message = await self._receive()
        except TimeoutError:
            self.refusal = timed_out(self.timeout)
            raise self.refusal from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit.max_bytes:
                self.refusal = too_large(self.limit.max_bytes)
                raise self.refusal
            self.complete = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if self.refusal is not None:
                self.replaced = True
                refusal = self.refusal
                await respond(self._send, refusal.status_code, refusal.body(), refusal.headers)
                return
        elif self.replaced:
            return
        await self._send(message)
