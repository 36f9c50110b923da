"""/v1/files through the official SDK and raw HTTP, on SQLite and PostgreSQL, every JSON
response checked against the reference."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.openapi import ConformanceLog
from tests.support.processes import ServiceProcess


def stored_files(service: ServiceProcess) -> list[Path]:
    root = Path(service.env["FILES_DIR"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_retrieve_content_delete(
    openai_client: openai.OpenAI, assistants_service: ServiceProcess, conformance: ConformanceLog
) -> None:
    body = b"Quarterly notes: revenue rose 12%.\n" * 1000
    created = openai_client.files.create(file=("notes.txt", body), purpose="assistants")
    assert created.id.startswith("file-")
    assert (created.filename, created.bytes, created.purpose) == (
        "notes.txt",
        len(body),
        "assistants",
    )
    assert openai_client.files.retrieve(created.id) == created
    assert openai_client.files.content(created.id).read() == body
    deleted = openai_client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.content(created.id)
    assert all(created.id not in p.name for p in stored_files(assistants_service))
    assert {"OpenAIFile", "DeleteFileResponse"} <= conformance.schemas()


def test_list_filters_by_purpose_and_pages(openai_client: openai.OpenAI) -> None:
    ids = [
        openai_client.files.create(file=(f"f{i}.md", b"# x"), purpose="user_data").id
        for i in range(5)
    ]
    openai_client.files.create(file=("other.txt", b"y"), purpose="vision")
    newest_first = [f.id for f in openai_client.files.list(purpose="user_data")]
    assert newest_first == ids[::-1]
    walked = [f.id for f in openai_client.files.list(purpose="user_data", limit=2, order="asc")]
    assert walked == ids
    everything = {f.purpose for f in openai_client.files.list()}
    assert {"user_data", "vision"} <= everything


def test_filename_with_path_parts_stays_inside(
    openai_client: openai.OpenAI, assistants_service: ServiceProcess
) -> None:
    created = openai_client.files.create(
        file=("../../../../etc/evil.txt", b"not a system file"), purpose="assistants"
    )
    assert created.filename == "evil.txt"
    root = Path(assistants_service.env["FILES_DIR"]).resolve()
    for path in stored_files(assistants_service):
        assert root in path.resolve().parents
    assert openai_client.files.content(created.id).read() == b"not a system file"


def test_expires_after_sets_expires_at(openai_client: openai.OpenAI) -> None:
    created = openai_client.files.create(
        file=("t.txt", b"x"),
        purpose="assistants",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert created.expires_at == created.created_at + 3600


def test_bad_uploads_have_openai_errors(api: httpx.Client) -> None:
    missing_purpose = api.post("/files", files={"file": ("a.txt", b"x")})
    assert missing_purpose.status_code == 400
    assert missing_purpose.json()["error"]["param"] == "purpose"
    wrong_purpose = api.post("/files", files={"file": ("a.txt", b"x")}, data={"purpose": "nope"})
    assert wrong_purpose.status_code == 400 and wrong_purpose.json()["error"]["param"] == "purpose"
    no_file = api.post("/files", data={"purpose": "assistants"}, files={"other": ("a", b"x")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    not_multipart = api.post("/files", json={"purpose": "assistants"})
    assert not_multipart.status_code == 400
    assert not_multipart.json()["error"]["type"] == "invalid_request_error"


def test_sdk_error_classes(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.files.delete("file-missing")
    assert missing.value.body["code"] == "not_found"
    with pytest.raises(openai.BadRequestError):
        openai_client.files.create(file=io.BytesIO(b"x"), purpose="fine-tune-results")  # type: ignore[arg-type]
