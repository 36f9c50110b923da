"""Serves the playground's page and its static assets; neither holds any data, so no key."""

from __future__ import annotations

import hashlib
import mimetypes
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
# The page may load only its own assets and talk only to its own origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}


@cache
def asset(name: str) -> tuple[bytes, str, str] | None:
    """An asset's bytes, content type and ETag; None for anything outside ``static/``."""
    path = (STATIC / name).resolve()
    if not path.is_relative_to(STATIC.resolve()) or not path.is_file():
        return None
    body = path.read_bytes()
    kind = (
        TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    )
    if kind.startswith("text/"):
        kind += "; charset=utf-8"
    return body, kind, '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def serve(request: Request, name: str, cache_control: str) -> Response:
    found = asset(name)
    if found is None:
        raise NotFound(f"No playground asset {name!r}.")
    body, kind, etag = found
    headers = {**SECURITY_HEADERS, "ETag": etag, "Cache-Control": cache_control}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=kind, headers=headers)


@router.get("/playground")
async def playground_page(request: Request) -> Response:
    return serve(request, "index.html", "no-cache")


@router.get("/playground/")
async def playground_slash() -> Response:
    return RedirectResponse("/playground", status_code=308)


@router.get("/playground/static/{name:path}")
async def playground_asset(request: Request, name: str) -> Response:
    # Revalidated on every load (an ETag round trip): the page and its modules change together.
    return serve(request, name, "no-cache")
