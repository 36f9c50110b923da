"""Ingestion through the service: every supported format ends completed and searchable,
unreadable files end failed with OpenAI's codes and a readable message; SQLite and
PostgreSQL."""

from __future__ import annotations

import json

import openai

from tests.retrieval.conftest import upload
from tests.retrieval.documents import docx_with_text, pdf_with_text

FORMATS = {
    "notes.txt": b"The harbour master logs every tanker arrival.",
    "guide.md": b"# Guide\n\nThe lighthouse keeper trims the wick nightly.",
    "model.py": b"def glacier_speed():\n    '''Glaciers creep a metre a day.'''\n    return 1\n",
    "quote.json": json.dumps({"orchid": "blooms in humid greenhouses"}).encode(),
    "fleet.csv": b"vessel,cargo\nAurora,copper cathodes\n",
    "page.html": b"<html><body><p>Falcons nest on cathedral spires.</p></body></html>",
    "report.pdf": pdf_with_text(["Saffron is harvested by hand from crocus flowers."]),
    "memo.docx": docx_with_text(["The vineyard ferments riesling in steel tanks."]),
}
QUESTIONS = {
    "notes.txt": "tanker arrival log",
    "guide.md": "lighthouse wick",
    "model.py": "glacier speed",
    "quote.json": "orchid greenhouse",
    "fleet.csv": "copper cathodes cargo",
    "page.html": "falcons cathedral",
    "report.pdf": "saffron crocus harvest",
    "memo.docx": "riesling vineyard tanks",
}


def test_every_format_is_ingested_and_found(client: openai.OpenAI) -> None:
    files = {name: upload(client, name, data) for name, data in FORMATS.items()}
    store = client.vector_stores.create(name="formats")
    batch = client.vector_stores.file_batches.create_and_poll(
        store.id, file_ids=[f.id for f in files.values()], poll_interval_ms=100
    )
    statuses = {
        f.id: (f.status, f.last_error)
        for f in client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id)
    }
    assert all(status == "completed" for status, _ in statuses.values()), statuses
    for name, question in QUESTIONS.items():
        top = next(iter(client.vector_stores.search(store.id, query=question, max_num_results=1)))
        assert top.file_id == files[name].id, (name, top.filename)


def test_unreadable_files_fail_with_reasons(client: openai.OpenAI) -> None:
    cases = {
        "photo.png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "unsupported_file"),
        "broken.pdf": (b"%PDF-1.7\nnot really", "invalid_file"),
        "broken.docx": (b"PK\x03\x04garbage", "invalid_file"),
        "empty.txt": (b"   \n", "invalid_file"),
    }
    store = client.vector_stores.create(name="bad")
    for name, (data, code) in cases.items():
        f = upload(client, name, data)
        done = client.vector_stores.files.create_and_poll(
            file_id=f.id, vector_store_id=store.id, poll_interval_ms=100
        )
        assert done.status == "failed", name
        assert done.last_error.code == code, (name, done.last_error)
        assert name in done.last_error.message
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.failed, counts.completed, counts.in_progress) == (4, 0, 0)
    assert client.vector_stores.retrieve(store.id).status == "completed"
