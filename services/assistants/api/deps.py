"""FastAPI dependencies: settings, database, the API key, schema readiness, list parameters."""

from __future__ import annotations

import hmac
import time
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from starlette.datastructures import Headers

from ..config import Settings
from ..db import Database
from ..errors import APIError, InvalidRequest, ServiceUnavailable, Unauthorized
from ..pagination import PageParams

SCHEMA_RECHECK_SECONDS = 2.0


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]


KEY_HEADERS = {"x-api-key": "X-API-Key", "authorization": "Authorization"}


def supplied_key(headers: Headers) -> str | None:
    """The key a request carries, stripped of whitespace: X-API-Key, else a Bearer token
    (what the SDK sends)."""
    supplied = headers.get("x-api-key")
    if supplied is not None:
        return supplied.strip()
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return token.strip() or None
    return None


def key_matches(supplied: str, settings: Settings) -> bool:
    """``supplied`` is the configured key, compared in constant time."""
    return hmac.compare_digest(supplied.encode(), settings.api_key.encode())


def access_error(headers: Headers, settings: Settings) -> APIError | None:
    """Why a request's headers do not grant access, or None when they carry the key.

    A header sent twice is refused: which copy a proxy or the server reads is not defined,
    and checking only one of them lets the other through unchecked.
    """
    for name, shown in KEY_HEADERS.items():
        if len(headers.getlist(name)) > 1:
            return InvalidRequest(f"Send one {shown} header, not several.", code="duplicate_header")
    supplied = supplied_key(headers)
    if not supplied:
        return Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'.",
            code="missing_api_key",
        )
    if not key_matches(supplied, settings):
        return Unauthorized("Incorrect API key provided.", code="invalid_api_key")
    return None


async def require_api_key(request: Request) -> None:
    """The key, from X-API-Key or a Bearer token. Headers are read straight off the
    request: this runs on every call, and /openapi.json documents both schemes as
    security schemes instead."""
    error = access_error(request.headers, request.app.state.settings)
    if error is not None:
        raise error


async def require_current_schema(request: Request) -> None:
    """Refuse to serve while the database is behind the migration head (re-checked lazily)."""
    state = request.app.state
    if state.schema_ready:
        return
    if time.monotonic() - state.schema_checked_at >= SCHEMA_RECHECK_SECONDS:
        await refresh_schema_state(request.app.state)
    if not state.schema_ready:
        raise ServiceUnavailable(state.schema_problem, code="database_not_migrated")


async def require_access(request: Request) -> None:
    """What every /v1 route requires, the key and then a current schema, as one
    dependency: FastAPI's per-dependency bookkeeping costs more than either check."""
    await require_api_key(request)
    await require_current_schema(request)


async def refresh_schema_state(state: object) -> None:
    db: Database = state.db  # type: ignore[attr-defined]
    try:
        migration = await db.migration_state()
        ready, problem = migration.up_to_date, migration.problem()
    except Exception as exc:  # any driver error means the same to a client: not ready
        ready, problem = False, f"the database is unreachable: {exc.__class__.__name__}: {exc}"
    state.schema_ready = ready  # type: ignore[attr-defined]
    state.schema_problem = problem  # type: ignore[attr-defined]
    state.schema_checked_at = time.monotonic()  # type: ignore[attr-defined]


async def page_params(
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    after: Annotated[str | None, Query()] = None,
    before: Annotated[str | None, Query()] = None,
) -> PageParams:
    return PageParams(limit=limit, order=order, after=after, before=before)


PageDep = Annotated[PageParams, Depends(page_params)]
