"""Chunking by tokens, as OpenAI's ``chunking_strategy`` says: ``auto`` is 800-token
chunks overlapping by 400; ``static`` sets both within OpenAI's limits. Tokens are counted
with cl100k_base from bpe-openai, whose tables ship inside the package (no network)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["AUTO", "Piece", "chunk_text", "count_tokens", "resolve_strategy"]

AUTO = {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}
MIN_CHUNK, MAX_CHUNK = 100, 4096


@cache
def _encoding() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


# bpe-openai refuses to encode more than 200,000 tokens at once; long texts are encoded in
# segments of at most this many characters, cut before whitespace so no word is split.
SEGMENT_CHARS = 100_000


def encode(text: str) -> list[int]:
    encoding = _encoding()
    tokens: list[int] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + SEGMENT_CHARS)
        if end < len(text):
            space = max(text.rfind(" ", start + 1, end), text.rfind("\n", start + 1, end))
            end = space if space > start else end
        tokens += encoding.encode(text[start:end])
        start = end
    return tokens


def count_tokens(text: str) -> int:
    return len(encode(text))


def resolve_strategy(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The strategy as stored and shown: ``auto`` (or none) becomes its static values."""
    if not raw or raw.get("type") == "auto":
        return {"type": "static", "static": dict(AUTO)}
    return {"type": "static", "static": dict(raw["static"])}


def check_static(static: dict[str, Any]) -> str | None:
    """Why a static strategy is invalid, or None."""
    size = static.get("max_chunk_size_tokens")
    overlap = static.get("chunk_overlap_tokens")
    if not isinstance(size, int) or not MIN_CHUNK <= size <= MAX_CHUNK:
        return f"max_chunk_size_tokens must be an integer from {MIN_CHUNK} to {MAX_CHUNK}"
    if not isinstance(overlap, int) or overlap < 0 or overlap > size // 2:
        return "chunk_overlap_tokens must be an integer from 0 to half of max_chunk_size_tokens"
    return None


@dataclass(frozen=True)
class Piece:
    text: str
    tokens: int


def chunk_text(text: str, strategy: dict[str, Any]) -> list[Piece]:
    """Windows of at most ``max_chunk_size_tokens`` tokens, each starting
    ``max - overlap`` tokens after the last; the last window ends at the text's end."""
    static = strategy["static"]
    size, overlap = static["max_chunk_size_tokens"], static["chunk_overlap_tokens"]
    encoding = _encoding()
    tokens = encode(text)
    if not tokens:
        return []
    step = max(1, size - overlap)
    pieces: list[Piece] = []
    start = 0
    while True:
        window = tokens[start : start + size]
        piece = encoding.decode(window).strip()
        if piece:
            pieces.append(Piece(piece, len(window)))
        if start + size >= len(tokens):
            return pieces
        start += step
