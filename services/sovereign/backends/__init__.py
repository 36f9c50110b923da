"""Backends sovereign can route to: Ollama's native API and any OpenAI-compatible server."""

from __future__ import annotations

import httpx

from services.sovereign.backends.base import Backend
from services.sovereign.backends.ollama import OllamaBackend
from services.sovereign.backends.openai_compat import OpenAICompatBackend
from services.sovereign.config import BackendConfig

__all__ = ["Backend", "OllamaBackend", "OpenAICompatBackend", "build_backend"]


def build_backend(name: str, config: BackendConfig, client: httpx.AsyncClient) -> Backend:
    if config.type == "ollama":
        return OllamaBackend(name, config, client)
    return OpenAICompatBackend(name, config, client)
