"""Build the sovereign FastAPI app: settings, routing config, one HTTP client, the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.sovereign import __version__
from services.sovereign.backends import build_backend
from services.sovereign.config import load_routing_config
from services.sovereign.deps import require_key
from services.sovereign.disconnect import ClientDisconnected
from services.sovereign.errors import SovereignError, error_body
from services.sovereign.readiness import Monitor
from services.sovereign.routes import chat, embeddings, health, models
from services.sovereign.routes.bodies import json_response
from services.sovereign.routing import Router
from services.sovereign.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("sovereign")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for these settings; a bad routing config raises ConfigError here."""
    settings = settings or Settings()
    config = load_routing_config(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for the app's lifetime; per-request timeouts come from each backend.
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0)) as client:
            backends = {
                name: build_backend(name, backend, client)
                for name, backend in config.backends.items()
            }
            app.state.router = Router(config, backends)
            app.state.monitor = Monitor(app.state.router)
            yield

    app = FastAPI(
        title="sovereign",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    keyed = [Depends(require_key)]
    app.include_router(chat.router, dependencies=keyed)
    app.include_router(models.router, dependencies=keyed)
    app.include_router(embeddings.router, dependencies=keyed)
    app.include_router(health.router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SovereignError)
    async def sovereign_error(request: Request, exc: SovereignError) -> Response:
        if exc.status >= 500:
            log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
        return json_response(exc.body(), status_code=exc.status)

    @app.exception_handler(ClientDisconnected)
    async def client_gone(request: Request, exc: ClientDisconnected) -> Response:
        return Response(status_code=499)  # nginx's "client closed request"; nobody reads it

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return json_response(
            error_body(str(exc.errors()[:1]), "invalid_request_error"), status_code=400
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return json_response(error_body(str(exc.detail), type_), status_code=exc.status_code)
