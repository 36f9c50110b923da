"""The aggregated model list and service health, over every backend's cached status."""

from __future__ import annotations

from typing import Any

from services.sovereign import __version__
from services.sovereign.errors import ModelNotFound
from services.sovereign.readiness import BackendStatus, Monitor

__all__ = ["backend_health", "find_model", "list_models"]


async def list_models(monitor: Monitor) -> tuple[list[dict[str, Any]], dict[str, BackendStatus]]:
    """Every backend's models (unreachable backends are left out) and every alias, each with
    `ready`: whether its backend's models can answer now; and the statuses they came from.

    A model is listed under the name that routes to it: bare when routing by name reaches
    its backend, `backend/model` when the name alone would go elsewhere.
    """
    router = monitor.router
    statuses = await monitor.all()
    data: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(model_id: str, owner: str) -> None:
        if model_id not in seen:
            seen.add(model_id)
            data.append(
                {
                    "id": model_id,
                    "object": "model",
                    "created": 0,
                    "owned_by": owner,
                    "ready": statuses[owner].ready,
                }
            )

    for name, status in statuses.items():
        backend = router.backends[name]
        for model in status.models:
            routed = router.resolve(model)
            add(model if routed.backend is backend else f"{name}/{model}", name)
    for alias in router.aliases:
        add(alias, router.resolve(alias).backend.name)
    return data, statuses


async def find_model(monitor: Monitor, model_id: str) -> dict[str, Any]:
    models, _ = await list_models(monitor)
    for model in models:
        if model["id"] == model_id:
            return model
    raise ModelNotFound(f"The model '{model_id}' does not exist on any backend")


async def backend_health(monitor: Monitor) -> dict[str, Any]:
    """Service status: "ok" when every backend's models can answer, "degraded" otherwise."""
    statuses = await monitor.all()
    backends = {name: s.report(monitor.router.backends[name]) for name, s in statuses.items()}
    return {
        "status": "ok" if all(s.ready for s in statuses.values()) else "degraded",
        "version": __version__,
        "default_backend": monitor.router.default.name,
        "backends": backends,
    }
