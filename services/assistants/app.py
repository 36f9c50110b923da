"""The assistants FastAPI application, built from one Settings object by ``create_app``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from . import __version__
from .api.deps import refresh_schema_state, require_access
from .api.limits import RequestGuard, body_limits
from .api.routes import (
    assistants,
    conversations,
    files,
    messages,
    responses,
    runs,
    threads,
    vector_stores,
)
from .config import Settings
from .db import Database
from .errors import install_error_handlers
from .files.storage import LocalFileStorage
from .health import router as health_router
from .health import start_storage_watch
from .ingestion.worker import start_ingestion
from .playground import router as playground_router
from .responses.worker import start_responses
from .runs.executor import start_executor
from .vector_stores.index import VectorCache

log = logging.getLogger("services.assistants")

# Background workers (the run executor) register here: each gets the app at start-up and
# returns an async stop function called at shutdown.
Worker = Callable[[FastAPI], Awaitable[Callable[[], Awaitable[None]]]]
WORKERS: list[Worker] = [start_storage_watch, start_executor, start_ingestion, start_responses]


def upstream_client(settings: Settings) -> httpx.AsyncClient:
    headers = {}
    if settings.sovereign_api_key:
        headers["Authorization"] = f"Bearer {settings.sovereign_api_key}"
    return httpx.AsyncClient(
        base_url=settings.inference_base_url,
        headers=headers,
        timeout=httpx.Timeout(connect=5.0, read=120.0, write=30.0, pool=30.0),
        limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database(settings.database())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = upstream_client(settings)
        await refresh_schema_state(app.state)
        if not app.state.schema_ready:
            log.error("not serving the API: %s", app.state.schema_problem)
        stops = [await worker(app) for worker in WORKERS]
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            await app.state.http.aclose()
            await database.dispose()

    app = FastAPI(
        title="Sovereign Assistants",
        version=__version__,
        description="A self-hosted OpenAI Assistants API v2.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.file_storage = LocalFileStorage(settings.files_path())
    app.state.vector_cache = VectorCache()
    app.state.schema_ready = False
    app.state.schema_problem = "the database has not been checked yet"
    app.state.schema_checked_at = float("-inf")
    install_error_handlers(app)
    guarded = [Depends(require_access)]
    # Routes are matched in order: messages, the busiest, first; runs before threads, so
    # POST /threads/runs wins over POST /threads/{thread_id}.
    for module in (
        messages,
        runs,
        assistants,
        threads,
        files,
        vector_stores,
        responses,
        conversations,
    ):
        app.include_router(module.router, prefix="/v1", dependencies=guarded)
    app.include_router(health_router)
    app.include_router(playground_router)
    # Added last, so outermost: the key and the body limits come before anything else.
    app.add_middleware(RequestGuard, settings=settings, limits=body_limits(settings))
    return app
