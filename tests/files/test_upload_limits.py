"""MAX_UPLOAD_BYTES is enforced while the body streams in: an oversized upload gets a 413
and leaves nothing on disk, whether or not it declared its length."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small_limit_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("limits")
    with run_assistants(
        sqlite_url(folder), folder / "assistants.log", env={"MAX_UPLOAD_BYTES": str(LIMIT)}
    ) as service:
        yield service


def on_disk(service: ServiceProcess) -> list[Path]:
    root = Path(service.env["FILES_DIR"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_at_the_limit_is_taken(small_limit_service: ServiceProcess) -> None:
    client = openai.OpenAI(
        base_url=f"{small_limit_service.base_url}/v1", api_key="test-key", max_retries=0
    )
    created = client.files.create(file=("ok.bin", b"a" * LIMIT), purpose="assistants")
    assert created.bytes == LIMIT


def test_declared_oversize_is_refused_up_front(small_limit_service: ServiceProcess) -> None:
    before = len(on_disk(small_limit_service))
    client = openai.OpenAI(
        base_url=f"{small_limit_service.base_url}/v1", api_key="test-key", max_retries=0
    )
    with pytest.raises(openai.APIStatusError) as refused:
        client.files.create(file=("big.bin", b"a" * (LIMIT * 3)), purpose="assistants")
    assert refused.value.status_code == 413
    assert refused.value.body["code"] == "file_too_large"
    assert len(on_disk(small_limit_service)) == before


def test_streamed_oversize_is_cut_off_while_reading(small_limit_service: ServiceProcess) -> None:
    """A chunked body has no declared length: the limit is found while reading it."""
    before = len(on_disk(small_limit_service))
    boundary = "b0undary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f"assistants\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for _ in range(LIMIT // 4096 + 8):
            yield b"z" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{small_limit_service.base_url}/v1/files",
        content=body(),
        headers={
            "Authorization": "Bearer test-key",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "file"
    assert len(on_disk(small_limit_service)) == before
