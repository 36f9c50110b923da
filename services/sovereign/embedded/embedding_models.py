"""The embedding models the embedded runtime serves, and the names each answers to."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from services.sovereign.embedded.embedder import Embeddings, bundled_embedder
from services.sovereign.embedded.static_embedder import StaticEmbedder
from services.sovereign.embedded.worker import ModelWorker

__all__ = ["EmbeddingModel", "bundled_embedding_models", "names_of"]

# Ollama's names for all-MiniLM-L6-v2 too, so a configuration written for Ollama works here.
ALIASES = {"all-minilm-l6-v2": ("all-minilm", "all-minilm:l6-v2")}


class EmbeddingModel(Protocol):
    model_id: str
    dimensions: int
    model_path: Path
    worker: ModelWorker

    async def load_and_warm_up(self) -> float: ...

    async def embed(self, texts: list[str]) -> Embeddings: ...


def bundled_embedding_models(n_threads: int) -> list[EmbeddingModel]:
    """The default first: the static table (fast), then all-MiniLM-L6-v2 itself (better
    ranked, about a hundred times slower on long chunks), loaded when first asked for."""
    return [StaticEmbedder(), bundled_embedder(n_threads)]


def names_of(model: EmbeddingModel) -> tuple[str, ...]:
    return (model.model_id, *ALIASES.get(model.model_id, ()))
