"""GET /health: status, version and per-dependency checks with latency, without a key."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from . import __version__
from .api.deps import refresh_schema_state

router = APIRouter(tags=["health"])

UPSTREAM_PROBE_TIMEOUT = 2.0


class HealthCheck(BaseModel):
    status: Literal["ok", "error", "mock", "unreachable"]
    latency_ms: float | None = None
    dialect: str | None = None
    url: str | None = None
    error: str | None = None
    detail: str | None = None


class HealthBody(BaseModel):
    """GET /health's answer; 503 carries the same body with status "unavailable"."""

    status: Literal["ok", "degraded", "unavailable"]
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
        return {"status": "error", "dialect": db.dialect, "error": f"{type(exc).__name__}: {exc}"}
    await refresh_schema_state(state)
    check: dict[str, Any] = {
        "status": "ok" if state.schema_ready else "error",
        "dialect": db.dialect,
        "latency_ms": round(latency, 2),
    }
    if not state.schema_ready:
        check["error"] = state.schema_problem
    return check


async def upstream_check(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    if settings.use_mock_inference:
        return {
            "status": "mock",
            "detail": "USE_MOCK_INFERENCE=true: runs are answered by the offline mock engine",
        }
    url = f"{settings.inference_base_url}/models"
    client: httpx.AsyncClient = request.app.state.http
    started = time.perf_counter()
    try:
        response = await client.get(url, timeout=UPSTREAM_PROBE_TIMEOUT)
    except httpx.HTTPError as exc:
        return {"status": "unreachable", "url": url, "error": f"{type(exc).__name__}: {exc}"}
    latency = round((time.perf_counter() - started) * 1000, 2)
    status = "ok" if response.status_code < 400 else "error"
    check = {"status": status, "url": url, "latency_ms": latency}
    if status == "error":
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
    if database["status"] != "ok":
        status, code = "unavailable", 503
    elif upstream["status"] in ("ok", "mock"):
        status, code = "ok", 200
    else:
        # Runs fail while the upstream is down, but the state layer itself still serves.
        status, code = "degraded", 200
    body = {
        "status": status,
        "service": "assistants",
        "version": __version__,
        "timestamp": datetime.now(UTC).isoformat(),
        "inference": "mock" if request.app.state.settings.use_mock_inference else "upstream",
        "checks": {"database": database, "upstream": upstream},
    }
    return JSONResponse(body, status_code=code)
