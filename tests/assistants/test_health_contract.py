"""GET /health in the seed service's shape, which Aurora TA reads: ``status`` healthy,
degraded or unhealthy; ``checks.database`` and ``checks.sovereign_playground`` each with a
``status`` (healthy/unhealthy) and ``latency_ms``, the latter with its ``url``. Extra fields
are allowed; the HTTP statuses stay: 200 healthy or degraded, 503 unhealthy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.fakes.openai_upstream import run_openai_upstream
from tests.support.processes import migrate, start_assistants

# The seed's example, as Aurora TA was written against it.
SEED_EXAMPLE: dict[str, Any] = {
    "status": "healthy",
    "checks": {
        "database": {"status": "healthy", "latency_ms": 1.2},
        "sovereign_playground": {
            "status": "healthy",
            "latency_ms": 12.5,
            "url": "http://localhost:8080",
        },
    },
}

_CHECK = {
    "type": "object",
    "required": ["status", "latency_ms"],
    "properties": {
        "status": {"enum": ["healthy", "unhealthy"]},
        "latency_ms": {"type": ["number", "null"]},
    },
}
SEED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"enum": ["healthy", "degraded", "unhealthy"]},
        "checks": {
            "type": "object",
            "required": ["database", "sovereign_playground"],
            "properties": {
                "database": _CHECK,
                "sovereign_playground": {
                    **_CHECK,
                    "required": ["status", "latency_ms", "url"],
                    "properties": {**_CHECK["properties"], "url": {"type": "string"}},
                },
            },
        },
    },
}


def test_the_schema_accepts_the_seed_example() -> None:
    jsonschema.validate(SEED_EXAMPLE, SEED_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**SEED_EXAMPLE, "status": "ok"}, SEED_SCHEMA)


def test_health_answers_the_seed_shape_healthy_degraded_and_unhealthy(tmp_path: Path) -> None:
    database = tmp_path / "assistants.db"
    url = f"sqlite:///{database}"
    with run_openai_upstream([]) as upstream:
        migrate(url)
        service = start_assistants(
            url, tmp_path / "log", env={"SOVEREIGN_PLAYGROUND_URL": upstream.url}
        )
        try:
            healthy = httpx.get(f"{service.base_url}/health")
            assert healthy.status_code == 200, healthy.text
            body = healthy.json()
            jsonschema.validate(body, SEED_SCHEMA)
            assert body["status"] == "healthy"
            assert body["checks"]["database"]["status"] == "healthy"
            assert body["checks"]["database"]["latency_ms"] >= 0
            playground = body["checks"]["sovereign_playground"]
            assert playground["status"] == "healthy" and playground["latency_ms"] >= 0
            assert playground["url"].startswith(upstream.url.rstrip("/"))
        finally:
            service.stop()

    # The upstream gone: degraded, still 200 (the state layer serves).
    service = start_assistants(
        url, tmp_path / "log2", env={"SOVEREIGN_PLAYGROUND_URL": "http://127.0.0.1:9"}
    )
    try:
        degraded = httpx.get(f"{service.base_url}/health")
        assert degraded.status_code == 200
        jsonschema.validate(degraded.json(), SEED_SCHEMA)
        assert degraded.json()["status"] == "degraded"
        assert degraded.json()["checks"]["sovereign_playground"]["status"] == "unhealthy"
        # The database gone: unhealthy, 503.
        database.unlink()
        unhealthy = httpx.get(f"{service.base_url}/health")
        assert unhealthy.status_code == 503
        jsonschema.validate(unhealthy.json(), SEED_SCHEMA)
        assert unhealthy.json()["status"] == "unhealthy"
        assert unhealthy.json()["checks"]["database"]["status"] == "unhealthy"
    finally:
        service.stop()
