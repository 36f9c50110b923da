"""Embeddings from the upstream's OpenAI-compatible ``POST /v1/embeddings`` (sovereign),
for the model named by EMBEDDING_MODEL; vectors come back L2-normalised float32."""

from __future__ import annotations

import httpx
import numpy as np

__all__ = ["BATCH", "EmbeddingError", "embed"]

# Texts per request: large enough to amortise the round trip, small enough that one slow
# request never holds a lease long.
BATCH = 32


class EmbeddingError(Exception):
    """The upstream could not embed: its message is shown in last_error."""


async def embed(http: httpx.AsyncClient, model: str, texts: list[str]) -> np.ndarray:
    """One row per text, unit length (rows of zeros stay zero)."""
    rows: list[np.ndarray] = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        try:
            response = await http.post(
                "/embeddings",
                json={"model": model, "input": batch, "encoding_format": "float"},
                timeout=httpx.Timeout(connect=10.0, read=300.0, write=60.0, pool=60.0),
            )
        except httpx.HTTPError as exc:
            raise EmbeddingError(
                f"the embedding service could not be reached: {exc.__class__.__name__}"
            ) from None
        if response.status_code >= 400:
            raise EmbeddingError(
                f"the embedding service answered {response.status_code}: {response.text[:300]}"
            )
        data = sorted(response.json().get("data", []), key=lambda item: item.get("index", 0))
        if len(data) != len(batch):
            raise EmbeddingError(
                f"the embedding service returned {len(data)} vectors for {len(batch)} texts"
            )
        rows.extend(np.asarray(item["embedding"], dtype=np.float32) for item in data)
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.vstack(rows)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms
