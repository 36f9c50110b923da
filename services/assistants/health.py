"""GET /health: status, version and per-dependency checks with latency, without a key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from . import __version__
from .api.deps import refresh_schema_state
from .storage import StorageFault

router = APIRouter(tags=["health"])

UPSTREAM_PROBE_TIMEOUT = 2.0
# How often the SQLite file is re-checked between requests.
STORAGE_WATCH_SECONDS = 0.5

log = logging.getLogger(__name__)


Status = Literal["healthy", "unhealthy"]


class HealthCheck(BaseModel):
    """One dependency, in the seed service's shape (``status``, ``latency_ms``) plus detail."""

    status: Status
    latency_ms: float | None = None
    dialect: str | None = None
    url: str | None = None
    mode: Literal["upstream", "mock"] | None = None
    error: str | None = None
    detail: str | None = None


class HealthBody(BaseModel):
    """GET /health's answer, the seed service's shape that clients such as Aurora TA read:
    503 with status "unhealthy" when the database cannot serve, "degraded" (200) when only
    the upstream is down."""

    status: Literal["healthy", "degraded", "unhealthy"]
    service: Literal["assistants"]
    version: str
    timestamp: str
    inference: Literal["mock", "upstream"]
    checks: dict[str, HealthCheck]


async def database_check(request: Request) -> dict[str, Any]:
    state = request.app.state
    db = state.db
    try:
        latency = await db.ping()
    except Exception as exc:  # the check reports every driver failure the same way
        reason = exc.reason if isinstance(exc, StorageFault) else f"{type(exc).__name__}: {exc}"
        return {"status": "unhealthy", "latency_ms": None, "dialect": db.dialect, "error": reason}
    await refresh_schema_state(state)
    check: dict[str, Any] = {
        "status": "healthy" if state.schema_ready else "unhealthy",
        "latency_ms": round(latency, 2),
        "dialect": db.dialect,
    }
    if not state.schema_ready:
        check["error"] = state.schema_problem
    return check


async def upstream_check(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    url = f"{settings.inference_base_url}/models"
    if settings.use_mock_inference:
        return {
            "status": "healthy",
            "latency_ms": 0.0,
            "url": url,
            "mode": "mock",
            "detail": "USE_MOCK_INFERENCE=true: runs are answered by the offline mock engine",
        }
    client: httpx.AsyncClient = request.app.state.http
    started = time.perf_counter()
    try:
        response = await client.get(url, timeout=UPSTREAM_PROBE_TIMEOUT)
    except httpx.HTTPError as exc:
        return {
            "status": "unhealthy",
            "latency_ms": None,
            "url": url,
            "mode": "upstream",
            "error": f"{type(exc).__name__}: {exc}",
        }
    latency = round((time.perf_counter() - started) * 1000, 2)
    healthy = response.status_code < 400
    check = {
        "status": "healthy" if healthy else "unhealthy",
        "latency_ms": latency,
        "url": url,
        "mode": "upstream",
    }
    if not healthy:
        check["error"] = f"HTTP {response.status_code}"
    return check


@router.get(
    "/health",
    response_model=HealthBody,
    responses={503: {"model": HealthBody, "description": "The database is not usable."}},
)
async def health(request: Request) -> JSONResponse:
    database = await database_check(request)
    upstream = await upstream_check(request)
    if database["status"] != "healthy":
        status, code = "unhealthy", 503
    elif upstream["status"] == "healthy":
        status, code = "healthy", 200
    else:
        # Runs fail while the upstream is down, but the state layer itself still serves.
        status, code = "degraded", 200
    body = {
        "status": status,
        "service": "assistants",
        "version": __version__,
        "timestamp": datetime.now(UTC).isoformat(),
        "inference": "mock" if request.app.state.settings.use_mock_inference else "upstream",
        "checks": {"database": database, "sovereign_playground": upstream},
    }
    return JSONResponse(body, status_code=code)


async def start_storage_watch(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """The WORKERS hook: re-check the SQLite file between requests, so that a fault is
    reported and its end noticed (with the schema re-checked: a restored file may be
    another revision) without a request or a restart."""
    db = app.state.db

    async def watch() -> None:
        seen = db.storage.reopened
        while True:
            await asyncio.sleep(STORAGE_WATCH_SECONDS)
            try:
                await db.check_storage()
                if db.storage.reopened != seen:
                    seen = db.storage.reopened
                    await refresh_schema_state(app.state)
            except Exception:
                log.exception("checking the database file failed")

    task = asyncio.create_task(watch(), name="storage-watch") if db.storage else None

    async def stop() -> None:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return stop
