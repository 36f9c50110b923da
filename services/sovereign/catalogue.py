"""The aggregated model list, the embeddings path, and backend health, over all backends."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from typing import Any

from services.sovereign import __version__
from services.sovereign.backends import Backend
from services.sovereign.errors import ModelNotFound
from services.sovereign.routing import Router

__all__ = ["backend_health", "create_embeddings", "find_model", "list_models"]

HEALTH_PROBE_LIMIT = 2.0


async def list_models(router: Router) -> list[dict[str, Any]]:
    """Every backend's models (unreachable backends are left out) and every alias.

    A model is listed under the name that routes to it: bare when routing by name reaches
    its backend, `backend/model` when the name alone would go elsewhere.
    """
    backends = list(router.backends.items())
    results = await asyncio.gather(
        *(backend.list_models() for _, backend in backends), return_exceptions=True
    )
    data: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(model_id: str, owner: str) -> None:
        if model_id not in seen:
            seen.add(model_id)
            data.append({"id": model_id, "object": "model", "created": 0, "owned_by": owner})

    for (name, backend), models in zip(backends, results, strict=True):
        if isinstance(models, BaseException):
            continue
        for model in models:
            routed = router.resolve(model)
            add(model if routed.backend is backend else f"{name}/{model}", name)
    for alias in router.aliases:
        add(alias, router.resolve(alias).backend.name)
    return data


async def find_model(router: Router, model_id: str) -> dict[str, Any]:
    for model in await list_models(router):
        if model["id"] == model_id:
            return model
    raise ModelNotFound(f"The model '{model_id}' does not exist on any backend")


def _base64_floats(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


async def create_embeddings(router: Router, body: dict[str, Any]) -> dict[str, Any]:
    route = router.resolve(body["model"])
    result = await route.backend.embeddings(body, route.model)
    # The openai SDK asks for base64 by default; a backend that only speaks floats is
    # answered in the encoding the client asked for.
    if body.get("encoding_format") == "base64":
        for item in result.get("data") or []:
            if isinstance(item.get("embedding"), list):
                item["embedding"] = _base64_floats(item["embedding"])
    return result


async def _probe(backend: Backend) -> dict[str, Any]:
    start = time.perf_counter()
    error: str | None = None
    try:
        await backend.probe(HEALTH_PROBE_LIMIT)
    except Exception as exc:  # any failure is what health reports, not raises
        error = getattr(exc, "message", None) or repr(exc)
    return {
        "type": backend.config.type,
        "url": backend.url,
        "reachable": error is None,
        "latency_ms": round((time.perf_counter() - start) * 1000, 2),
        "error": error,
    }


async def backend_health(router: Router) -> dict[str, Any]:
    """Service status: "ok" when every backend answers, "degraded" otherwise."""
    names = list(router.backends)
    checks = await asyncio.gather(*(_probe(router.backends[n]) for n in names))
    backends = dict(zip(names, checks, strict=True))
    healthy = all(check["reachable"] for check in checks)
    return {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "default_backend": router.default.name,
        "backends": backends,
    }
