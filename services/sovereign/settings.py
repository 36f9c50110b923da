"""Sovereign's one Settings object, read from the environment when the app is built."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_EMBEDDING", "Settings", "ollama_url"]


class Settings(BaseSettings):
    # Only the SOVEREIGN_* names (and Ollama's own OLLAMA_HOST) are read from the
    # environment: generic names such as API_KEY or PORT belong to other services.
    model_config = SettingsConfigDict(
        env_prefix="SOVEREIGN_", populate_by_name=True, extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = 8080
    ollama_host: str = Field("127.0.0.1:11434", validation_alias="OLLAMA_HOST")
    api_key: str | None = None
    backend_url: str | None = None
    config_path: str | None = Field(None, validation_alias="SOVEREIGN_CONFIG")
    # The runtime's embedding model, answered under the stable name DEFAULT_EMBEDDING: a
    # client (the assistants service) asks for that name and is never restarted when the
    # stack moves to a runtime with another embedder.
    embedding_model: str | None = None


DEFAULT_EMBEDDING = "default-embedding"


def ollama_url(ollama_host: str) -> str:
    """Read OLLAMA_HOST the way Ollama does: `host`, `host:port` or a URL; port 11434."""
    value = ollama_host.strip().rstrip("/") or "127.0.0.1:11434"
    scheme = "http"
    if "://" in value:
        scheme, value = value.split("://", 1)
    host, _, port = value.partition(":")
    if not port:
        port = "443" if scheme == "https" else "11434"
    # 0.0.0.0 is how Ollama is told to listen everywhere; to reach it, use loopback.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    return f"{scheme}://{host}:{port}"
