"""The shared file_search pieces without a service: citation rewriting in both forms, as
the model's text arrives in arbitrary chunks, numbering across searches, and the queries of
a model's own search."""

from __future__ import annotations

import pytest

from services.assistants.builtin.file_search import (
    Citations,
    IndexCitations,
    Sources,
    call_queries,
)
from services.assistants.vector_stores.search import SearchHit

TEXT = "Etna is in Sicily [1], bread needs yeast [2][1] and [9] is unknown [2]."


def sources() -> Sources:
    found = Sources()
    found.add(
        [
            SearchHit(10, "file-a", "a.md", 0.9, "Etna..."),
            SearchHit(11, "file-b", "b.txt", 0.5, "Bread..."),
        ]
    )
    return found


def chunked(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, len(TEXT)])
def test_markers_in_any_chunking(size: int) -> None:
    citations = Citations(sources())
    out = "".join(citations.feed(c)[0] for c in chunked(TEXT, size)) + citations.flush()[0]
    assert out == (
        "Etna is in Sicily 【1†a.md】, bread needs yeast 【2†b.txt】【1†a.md】 and [9] is "
        "unknown 【2†b.txt】."
    )
    for annotation in citations.annotations:
        assert out[annotation["start_index"] : annotation["end_index"]] == annotation["text"]
    assert [a["file_citation"]["file_id"] for a in citations.annotations] == [
        "file-a",
        "file-b",
        "file-a",
        "file-b",
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, len(TEXT)])
def test_index_citations_in_any_chunking(size: int) -> None:
    citations = IndexCitations(sources())
    out = "".join(citations.feed(c)[0] for c in chunked(TEXT, size)) + citations.flush()[0]
    assert out == "Etna is in Sicily, bread needs yeast and [9] is unknown."
    where = [(a["filename"], out[: a["index"]].split()[-1]) for a in citations.annotations]
    assert where == [
        ("a.md", "Sicily"),
        ("b.txt", "yeast"),
        ("a.md", "yeast"),
        ("b.txt", "unknown"),
    ]
    assert all(set(a) == {"type", "file_id", "filename", "index"} for a in citations.annotations)


def test_a_passage_found_twice_keeps_its_number() -> None:
    found = sources()
    again = found.add(
        [
            SearchHit(12, "file-c", "c.txt", 0.7, "New"),
            SearchHit(10, "file-a", "a.md", 0.8, "Etna..."),
        ]
    )
    assert [n for n, _ in again] == [3, 1]
    assert "[3] (from c.txt)" in found.tool_result(again)


@pytest.mark.parametrize(
    ("arguments", "queries"),
    [
        ('{"queries": ["a b", " ", "c"]}', ["a b", "c"]),
        ('{"query": "lava"}', ["lava"]),
        ("plain words", ["plain words"]),
        ('{"queries": "one"}', ["one"]),
        ("{}", []),
    ],
)
def test_call_queries(arguments: str, queries: list[str]) -> None:
    assert call_queries(arguments) == queries
