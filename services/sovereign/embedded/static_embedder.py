"""The default embedding model: a static table distilled from all-MiniLM-L6-v2.

A text's vector is the mean of its WordPiece tokens' rows, normalised: no network, no
transformer at run time, thousands of chunks a second. It has no window, so every token of
a long text counts and nothing is cut. The table is made by ``embedded/distill.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.sovereign.embedded.embedder import (
    TOKENIZER,
    EmbedderError,
    Embeddings,
    OnItsWorker,
)
from services.sovereign.embedded.worker import ModelWorker

__all__ = ["STATIC_DIMENSIONS", "STATIC_MODEL_ID", "STATIC_TABLE", "StaticEmbedder"]

STATIC_MODEL_ID = "all-minilm-l6-v2-static"
STATIC_DIMENSIONS = 256
STATIC_TABLE = Path(__file__).parent / "assets" / f"{STATIC_MODEL_ID}.npz"


class StaticEmbedder(OnItsWorker):
    model_id = STATIC_MODEL_ID
    dimensions = STATIC_DIMENSIONS

    def __init__(
        self,
        table_path: Path = STATIC_TABLE,
        tokenizer_path: Path = TOKENIZER,
    ) -> None:
        self.model_path = table_path
        self.tokenizer_path = tokenizer_path
        self.worker = ModelWorker("static-embedder")
        self.table: Any = None
        self.tokenizer: Any = None

    def _load(self) -> None:
        import numpy as np
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        tokenizer.no_truncation()  # no window: every token counts
        tokenizer.no_padding()
        with np.load(self.model_path) as table:
            vectors, scales = table["vectors"], table["scales"]
        expected = (tokenizer.get_vocab_size(), self.dimensions)
        if vectors.shape != expected:
            raise EmbedderError(
                f"{self.model_path} holds a {vectors.shape} table; this tokenizer needs {expected}"
            )
        # Dequantised once: 31 MB of float32 makes each text a gather and a sum.
        self.table = vectors.astype(np.float32) * scales[:, None]
        self.tokenizer = tokenizer

    def _embed(self, texts: list[str]) -> Embeddings:
        import numpy as np

        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        pooled = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, encoding in enumerate(encoded):
            if encoding.ids:
                pooled[row] = self.table[encoding.ids].sum(axis=0)
        # A text with no tokens (only spaces, say) stays the zero vector: similar to nothing.
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return Embeddings(pooled.tolist(), sum(len(e.ids) for e in encoded))
