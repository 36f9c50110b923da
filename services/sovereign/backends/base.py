"""What every backend offers, and the HTTP plumbing they share: timeouts and error mapping."""

from __future__ import annotations

import asyncio
import codecs
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx

from services.sovereign.config import BackendConfig, Timeouts
from services.sovereign.errors import (
    ModelNotFound,
    SovereignError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from services.sovereign.events import Event

__all__ = ["Backend", "LineParser", "line_batches", "upstream_message"]


class LineParser(Protocol):
    """Turns one line of an upstream stream into events."""

    complete: bool  # the answer is whole, even if the stream's end marker never comes

    def feed(self, line: str, out: list[Event]) -> bool:
        """Append the line's events to out; True at the stream's end marker."""
        ...


async def line_batches(response: httpx.Response) -> AsyncIterator[list[str]]:
    """The complete lines that each network read brings (without their line endings)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for data in response.aiter_bytes():
        pending += decoder.decode(data)
        if "\n" not in pending:
            continue
        *lines, pending = pending.split("\n")
        yield [line.rstrip("\r") for line in lines]
    pending += decoder.decode(b"", final=True)
    if pending:
        yield [pending.rstrip("\r")]


def upstream_message(response: httpx.Response) -> str:
    """The error text of an upstream error body: OpenAI's shape, Ollama's, or plain text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return str(body)


class Backend(ABC):
    """One upstream runtime. Methods raise SovereignError subclasses, never httpx errors."""

    kind = "backend"

    def __init__(self, name: str, config: BackendConfig, client: httpx.AsyncClient) -> None:
        self.name = name
        self.config = config
        self.client = client
        self.url = config.url.rstrip("/")
        self.timeouts: Timeouts = config.timeouts
        key = config.key()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    @abstractmethod
    async def complete(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """A non-streamed chat.completion body (not yet normalised)."""

    @abstractmethod
    def stream(self, body: dict[str, Any], model: str) -> AsyncIterator[list[Event]]:
        """Stream batches of events; ends only when the upstream ended its stream properly."""

    @abstractmethod
    async def embeddings(self, body: dict[str, Any], model: str) -> dict[str, Any]:
        """An OpenAI embeddings body with float vectors (checked by the caller)."""

    @abstractmethod
    async def readiness(self, limit: float) -> tuple[bool, list[str], str | None]:
        """One cheap request: (reachable, its models, why its models cannot answer or None).

        Raises (a SovereignError) when the backend cannot be reached at all.
        """

    def describe(self) -> str:
        return f"{self.kind} backend '{self.name}' at {self.url}"

    def http_timeout(self, read: float | None) -> httpx.Timeout:
        t = self.timeouts
        return httpx.Timeout(connect=t.connect, read=read, write=t.connect, pool=t.connect)

    async def send(
        self, request: httpx.Request, limit: float, *, stream: bool = False
    ) -> httpx.Response:
        """Send within `limit` seconds (headers only when streaming); errors mapped to ours."""
        try:
            async with asyncio.timeout(limit):
                return await self.client.send(request, stream=stream)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.describe()} did not answer within {limit:g}s") from exc
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc

    async def request_json(
        self, method: str, path: str, *, json_body: Any = None, limit: float, model: str = ""
    ) -> Any:
        """One bounded request whose JSON answer is returned; errors mapped to ours."""
        request = self.client.build_request(
            method,
            self.url + path,
            json=json_body,
            headers=self.headers,
            timeout=self.http_timeout(limit),
        )
        response = await self.send(request, limit)
        if response.status_code >= 400:
            raise self.status_error(response, model)
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(f"{self.describe()} answered with invalid JSON") from exc

    async def open_stream(self, path: str, payload: dict[str, Any], model: str) -> httpx.Response:
        """Send a streaming request and wait (first-token bound) for a successful status."""
        request = self.client.build_request(
            "POST",
            self.url + path,
            json=payload,
            headers=self.headers,
            timeout=self.http_timeout(None),  # first-token and idle limits are ours
        )
        response = await self.send(request, self.timeouts.first_token, stream=True)
        if response.status_code >= 400:
            try:
                async with asyncio.timeout(self.timeouts.connect):
                    await response.aread()
            except (TimeoutError, httpx.HTTPError):
                pass
            finally:
                await response.aclose()
            raise self.status_error(response, model)
        return response

    async def relay(
        self, path: str, payload: dict[str, Any], model: str, parser: LineParser
    ) -> AsyncIterator[list[Event]]:
        """Open the stream and turn its lines into event batches, one per network read.

        Batching keeps a burst of upstream chunks to one write to the client, which is
        what keeps many concurrent streams cheap.
        """
        response = await self.open_stream(path, payload, model)
        try:
            async for lines in line_batches(response):
                events: list[Event] = []
                ended = False
                try:
                    for line in lines:
                        if parser.feed(line, events):
                            ended = True
                            break
                except UpstreamError:
                    if events:
                        yield events  # what arrived before the fault still reaches the client
                    raise
                if events:
                    yield events
                if ended:
                    return
        except httpx.HTTPError as exc:
            raise self.transport_error(exc) from exc
        finally:
            await response.aclose()
        if not parser.complete:
            raise UpstreamError(
                f"{self.describe()} ended the stream early, before it finished the answer",
                code="upstream_stream_truncated",
            )

    def transport_error(self, exc: httpx.HTTPError) -> SovereignError:
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamTimeout(f"{self.describe()} timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return UpstreamUnreachable(f"{self.describe()} is unreachable: {exc}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
            return UpstreamDisconnected(
                f"{self.describe()} dropped the connection before its answer was complete "
                f"(the model process may have crashed; retry once it is back): {exc}"
            )
        return UpstreamError(f"connection to {self.describe()} failed: {exc!r}")

    def status_error(self, response: httpx.Response, model: str) -> SovereignError:
        message = upstream_message(response) if response.is_stream_consumed else ""
        if response.status_code == 404 and model and "model" in message.lower():
            return ModelNotFound(
                f"model '{model}' is not available on {self.describe()}: {message}"
            )
        return UpstreamStatusError(
            response.status_code,
            f"{self.describe()} answered {response.status_code}: {message or 'no details'}",
        )


def parse_json_line(data: str, backend: Backend) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise UpstreamError(
            f"{backend.describe()} sent a malformed stream chunk: {data[:200]!r}",
            code="upstream_malformed_chunk",
        ) from exc
