"""The Assistants Playground: a web page at /playground that talks to this service's own API."""

from __future__ import annotations

from fastapi import APIRouter

from .models import router as models_router
from .page import router as page_router

__all__ = ["router"]

router = APIRouter()
router.include_router(page_router)
router.include_router(models_router)
