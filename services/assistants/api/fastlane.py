"""The busiest routes, creating and listing a thread's messages, answered below the framework.

FastAPI's routing, dependency solving and request parsing cost several times what storing
or reading a message does. This ASGI middleware answers well-formed requests to
``/v1/threads/{thread_id}/messages`` itself, with the same functions the routes use; any
request it does not accept as it stands (no or a wrong key, a schema behind head, a body
or query that does not validate, another content type) goes on, untouched, to the
FastAPI routes, which stay the whole definition of the API: its documentation and every
validation error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from json import JSONDecodeError
from typing import Any
from urllib.parse import parse_qsl

from orjson import dumps
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.datastructures import Headers

from ..errors import APIError, unstorable
from ..pagination import PageParams
from ..schemas.threads import MessageCreate
from .deps import key_matches, supplied_key
from .json_route import parse_json
from .routes import messages

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX, SUFFIX = "/v1/threads/", "/messages"
JSON_HEADERS = [(b"content-type", b"application/json")]


class MessagesFastLane:
    """ASGI middleware: POST and GET /v1/threads/{thread_id}/messages, answered directly."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: settings, db, schema readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        thread_id = self._thread_id(scope)
        if thread_id is None or not self._admitted(scope):
            await self.app(scope, receive, send)
        elif scope["method"] == "GET":
            await self._list(scope, receive, send, thread_id)
        else:
            await self._create(scope, receive, send, thread_id)

    @staticmethod
    def _thread_id(scope: Scope) -> str | None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "POST"):
            return None
        path: str = scope["path"]
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            return None
        thread_id = path[len(PREFIX) : -len(SUFFIX)]
        return thread_id if thread_id and "/" not in thread_id else None

    def _admitted(self, scope: Scope) -> bool:
        """The right key and a current schema; the routes explain anything else."""
        if not self.state.schema_ready:
            return False
        supplied = supplied_key(Headers(scope=scope))
        return bool(supplied) and key_matches(supplied, self.state.settings)

    async def _list(self, scope: Scope, receive: Receive, send: Send, thread_id: str) -> None:
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        params = _page_params(query)
        if params is None:
            await self.app(scope, receive, send)
            return
        await self._answer(
            send, messages.page(self.state.db, thread_id, params, query.get("run_id"))
        )

    async def _create(self, scope: Scope, receive: Receive, send: Send, thread_id: str) -> None:
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        request = _message_create(scope, body)
        if request is None:
            await self.app(scope, _replay(body, receive), send)
            return
        await self._answer(send, messages.create(self.state.db, thread_id, request))

    @staticmethod
    async def _answer(send: Send, outcome: Awaitable[dict[str, Any]]) -> None:
        try:
            status, content = 200, await outcome
        except (APIError, DataError) as exc:
            error = exc if isinstance(exc, APIError) else unstorable(exc)
            status, content = error.status_code, error.body()
        body = dumps(content)
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _page_params(query: dict[str, str]) -> PageParams | None:
    """The page the query asks for, if every parameter is plainly valid (else None)."""
    limit = query.get("limit", "20")
    order = query.get("order", "desc")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100):
        return None
    if order not in ("asc", "desc"):
        return None
    return PageParams(
        limit=int(limit), order=order, after=query.get("after"), before=query.get("before")
    )


def _message_create(scope: Scope, body: bytes) -> MessageCreate | None:
    """The request body as the route would take it, if it is JSON and valid (else None).
    The routes read a body as JSON only when its Content-Type says so."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
    if content_type.split(b";")[0].strip().lower() != b"application/json":
        return None
    try:
        return MessageCreate.model_validate(parse_json(body))
    except (JSONDecodeError, ValidationError):
        return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real channel."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
