"""GET /v1/models: the models the upstream serves, behind the key, for choosing an assistant's."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request

from ..api.deps import require_api_key
from ..errors import UpstreamError

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_api_key)])

MODELS_TIMEOUT = 5.0


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    if settings.use_mock_inference:
        # The offline engine answers whatever model a run names.
        data = [{"id": "mock", "object": "model", "created": 0, "owned_by": "assistants"}]
        return {"object": "list", "data": data}
    client: httpx.AsyncClient = request.app.state.http
    url = f"{settings.inference_base_url}/models"
    try:
        response = await client.get(url, timeout=MODELS_TIMEOUT)
        response.raise_for_status()
        body = response.json()
        models = [
            {
                "id": str(item["id"]),
                "object": "model",
                "created": int(item.get("created") or 0),
                "owned_by": str(item.get("owned_by") or "upstream"),
            }
            for item in body.get("data", [])
        ]
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UpstreamError(
            f"The upstream's model list at {url} could not be read: {type(exc).__name__}: {exc}",
            code="upstream_error",
        ) from None
    return {"object": "list", "data": models}
