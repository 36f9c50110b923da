"""Text extraction for every supported format, its failures, and token chunking."""

from __future__ import annotations

import json

import pytest

from services.assistants.ingestion.chunking import (
    chunk_text,
    count_tokens,
    resolve_strategy,
)
from services.assistants.ingestion.extract import ExtractionError, extract_text
from tests.retrieval.documents import docx_with_text, pdf_with_text


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("notes.txt", b"plain words here", "plain words here"),
        ("README.md", b"# Title\n\n- item one", "# Title\n\n- item one"),
        ("main.py", b"def f():\n    return 42\n", "return 42"),
        ("data.json", json.dumps({"ticker": "ACME", "price": 12}).encode(), '"ticker": "ACME"'),
        ("prices.csv", b"ticker,price\nACME,12\n", "ACME,12"),
        ("latin1.txt", "café crème".encode("cp1252"), "café crème"),
        ("no_extension", b"just text without a suffix", "just text"),
    ],
)
def test_text_formats(name: str, data: bytes, expected: str) -> None:
    assert expected in extract_text(name, data)


def test_html_keeps_text_and_drops_scripts() -> None:
    html = (
        b"<html><head><title>t</title><style>p{}</style></head><body>"
        b"<h1>Quarterly</h1><p>Revenue &amp; profit rose.</p><script>alert(1)</script>"
        b"</body></html>"
    )
    text = extract_text("page.html", html)
    assert "Quarterly" in text and "Revenue & profit rose." in text
    assert "alert" not in text and "p{}" not in text


def test_pdf() -> None:
    text = extract_text("report.pdf", pdf_with_text(["Mount Etna erupted.", "Lava (hot) flows."]))
    assert "Mount Etna erupted." in text and "Lava (hot) flows." in text


def test_docx_paragraphs_and_tables() -> None:
    data = docx_with_text(["Sourdough needs a starter."], [["flour", "500 g"], ["water", "350 g"]])
    text = extract_text("recipe.docx", data)
    assert "Sourdough needs a starter." in text
    assert "flour | 500 g" in text


@pytest.mark.parametrize(
    ("name", "data", "code", "words"),
    [
        (
            "image.png",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "unsupported_file",
            "not a supported",
        ),
        ("archive.zip", b"PK\x03\x04\x00\x00binary", "unsupported_file", "not a supported"),
        ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "invalid_file", "PDF"),
        ("broken.docx", b"PK\x03\x04 not a word file", "invalid_file", "Word document"),
        ("bad.json", b'{"open": ', "invalid_file", "not valid JSON"),
        ("empty.pdf", pdf_with_text([]), "invalid_file", "no text"),
    ],
)
def test_failures_say_why(name: str, data: bytes, code: str, words: str) -> None:
    with pytest.raises(ExtractionError) as failed:
        extract_text(name, data)
    assert failed.value.code == code
    assert words in failed.value.message and name in failed.value.message


def test_auto_chunking_is_800_tokens_with_400_overlap() -> None:
    text = " ".join(f"word{i}" for i in range(3000))
    strategy = resolve_strategy({"type": "auto"})
    assert strategy == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }
    pieces = chunk_text(text, strategy)
    assert all(p.tokens <= 800 for p in pieces)
    assert pieces[0].tokens == 800
    # Consecutive chunks share their overlap: the second starts inside the first.
    assert pieces[1].text.split()[0] in pieces[0].text
    assert pieces[-1].text.endswith("word2999")
    total = count_tokens(text)
    assert len(pieces) == -(-(total - 400) // 400)


def test_static_chunking() -> None:
    text = ("alpha beta gamma delta " * 200).strip()
    strategy = resolve_strategy(
        {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    )
    pieces = chunk_text(text, strategy)
    assert sum(p.tokens for p in pieces) == count_tokens(text)
    assert chunk_text("", strategy) == []


def test_texts_past_the_tokenizers_limit_are_chunked() -> None:
    """bpe-openai encodes at most 200,000 tokens at once; a 1 MB file has more."""
    text = " ".join(f"w{i % 997}x" for i in range(250_000))
    strategy = resolve_strategy(None)
    pieces = chunk_text(text, strategy)
    assert count_tokens(text) > 200_000
    assert len(pieces) == -(-(count_tokens(text) - 400) // 400)
    assert pieces[-1].text.endswith(text[-10:])
