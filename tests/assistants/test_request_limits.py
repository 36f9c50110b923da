"""Request limits on a real service process: the key before the body, body sizes per route,
deadlines for requests that never finish arriving, and HTTP errors in OpenAI's shape."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from services.assistants.api.limits import UPLOAD_FRAMING_BYTES, BodyLimit, body_limits
from services.assistants.config import Settings
from services.assistants.http_protocol import MAX_HEADER_BYTES
from tests.support.databases import sqlite_url
from tests.support.processes import ServiceProcess, run_assistants

MAX_BODY = 1024 * 1024
MAX_UPLOAD = 4 * 1024 * 1024
HEADER_TIMEOUT = 1.5
BODY_TIMEOUT = 1.5
KEY = {"X-API-Key": "test-key"}
MB = 1024 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("limits")
    env = {
        "MAX_BODY_BYTES": str(MAX_BODY),
        "MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "REQUEST_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT),
    }
    with run_assistants(sqlite_url(folder), folder / "assistants.log", env=env) as running:
        yield running


def exchange(service: ServiceProcess, data: bytes, wait: float = 10.0) -> tuple[bytes, float]:
    """Send raw bytes; everything the server answers until it closes, and how long it took."""
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.settimeout(wait)
        started = time.monotonic()
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received, time.monotonic() - started


def error_of(raw: bytes) -> tuple[int, dict]:
    """Status and OpenAI error object of a raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return status, error


def assert_refused(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if code is not None:
        assert error["code"] == code


def test_limits_table_gives_uploads_their_own_limit() -> None:
    limits = body_limits(Settings(max_body_bytes=MAX_BODY, max_upload_bytes=MAX_UPLOAD))
    assert limits.for_request("POST", "/v1/assistants") == BodyLimit(MAX_BODY)
    assert limits.for_request("POST", "/v1/threads/thread_x/messages") == BodyLimit(MAX_BODY)
    upload = limits.for_request("POST", "/v1/files")
    assert upload.streamed and upload.max_bytes == MAX_UPLOAD + UPLOAD_FRAMING_BYTES
    assert limits.for_request("GET", "/v1/files") == BodyLimit(MAX_BODY)


def test_a_body_within_the_limit_is_taken(service: ServiceProcess) -> None:
    body = {"model": "m", "instructions": "i" * 256_000}
    assert len(json.dumps(body)) < MAX_BODY
    response = httpx.post(f"{service.base_url}/v1/assistants", json=body, headers=KEY)
    assert response.status_code == 200, response.text


def test_the_key_and_the_size_are_checked_before_the_body_is_sent(
    service: ServiceProcess,
) -> None:
    # Only headers go out: the answers come without waiting for a byte of the body.
    declared = "POST /v1/assistants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    huge = "Content-Length: 200000000\r\n"
    for headers, status, code in [
        ("", 401, "missing_api_key"),
        ("X-API-Key: wrong\r\n", 401, "invalid_api_key"),
        ("Authorization: Bearer test-key\r\nAuthorization: Bearer x\r\n", 400, None),
        ("X-API-Key: test-key\r\n", 413, "request_too_large"),
    ]:
        request = (declared + headers + huge + "Connection: close\r\n\r\n").encode()
        raw, took = exchange(service, request)
        got, error = error_of(raw)
        assert got == status and (code is None or error["code"] == code), raw
        # Had the server waited for the body, the answer would be its 408 (after BODY_TIMEOUT).
        assert took < BODY_TIMEOUT + 5, took


def _peak_rss(process: psutil.Process, stop: threading.Event) -> int:
    peak = 0
    while not stop.is_set():
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.02)
    return peak


def _post_200mb(url: str, headers: dict[str, str], chunked: bool) -> httpx.Response:
    chunk = b"x" * MB

    def stream() -> Iterator[bytes]:
        for _ in range(200):
            yield chunk

    content = stream() if chunked else chunk * 200
    return httpx.post(url, content=content, headers=headers, timeout=60)


def test_oversized_bodies_are_refused_with_memory_bounded(service: ServiceProcess) -> None:
    process = psutil.Process(service.proc.pid)
    before = process.memory_info().rss
    url = f"{service.base_url}/v1/assistants"
    json_type = {"Content-Type": "application/json"}
    cases = [
        ({**json_type}, False, 401),
        ({**json_type}, True, 401),
        ({**json_type, **KEY}, False, 413),
        ({**json_type, **KEY}, True, 413),
        ({**json_type, "Authorization": "Bearer wrong"}, True, 401),
        ({**json_type, **KEY}, True, 413),
    ]
    stop = threading.Event()
    with ThreadPoolExecutor(len(cases) + 1) as pool:
        peak = pool.submit(_peak_rss, process, stop)
        futures = [pool.submit(_post_200mb, url, h, chunked) for h, chunked, _ in cases]
        responses = [f.result() for f in futures]
        stop.set()
    for response, (_, _, status) in zip(responses, cases, strict=True):
        assert_refused(response, status)
    # Six 200 MB bodies at once: read into memory they would cost well over a gigabyte.
    growth = (peak.result() - before) / MB
    assert growth < 100, f"the service grew by {growth:.0f} MB"
    assert httpx.get(f"{service.base_url}/v1/assistants", headers=KEY).status_code == 200


def test_uploads_have_their_own_larger_limit(service: ServiceProcess) -> None:
    url = f"{service.base_url}/v1/files"
    headers = {**KEY, "Content-Type": "multipart/form-data; boundary=b"}
    over_json = httpx.post(url, content=b"x" * (2 * MAX_BODY), headers=headers)
    assert over_json.status_code != 413, over_json.text
    over_upload = httpx.post(
        url, content=b"x" * (MAX_UPLOAD + UPLOAD_FRAMING_BYTES + 1), headers=headers
    )
    assert_refused(over_upload, 413, "request_too_large")


def test_incomplete_requests_are_closed(service: ServiceProcess) -> None:
    half_headers = b"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nX-API-Key: te"
    short_body = (
        b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nX-API-Key: test-key\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"'
    )
    for request, timeout in [(half_headers, HEADER_TIMEOUT), (short_body, BODY_TIMEOUT)]:
        raw, took = exchange(service, request)
        status, error = error_of(raw)
        assert status == 408 and error["code"] == "request_timeout", raw
        assert timeout - 0.2 < took < timeout + 5, took
    # A connection that never asks anything is closed without an answer.
    raw, took = exchange(service, b"")
    assert raw == b"" and took < HEADER_TIMEOUT + 5


def _trickle(service: ServiceProcess, head: bytes, drip: bytes) -> tuple[bytes, float]:
    """Send ``head``, then ``drip`` a byte at a time every 0.2 s until the server answers."""
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.settimeout(0.2)
        started = time.monotonic()
        sock.sendall(head)
        received = b""
        for byte in drip:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            received += chunk
            if not chunk:
                break
        return received, time.monotonic() - started


def test_slow_requests_are_closed(service: ServiceProcess) -> None:
    # Bytes keep coming, but too slowly: the deadline is for the whole, not between bytes.
    slow_headers, took = _trickle(service, b"GET /v1/assistants HTTP/1.1\r\n", b"X-Long: " * 100)
    assert error_of(slow_headers)[0] == 408 and took < HEADER_TIMEOUT + 5, took
    head = (
        b"POST /v1/assistants HTTP/1.1\r\nHost: x\r\nX-API-Key: test-key\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    slow_body, took = _trickle(service, head, b" " * 1000)
    assert error_of(slow_body)[0] == 408 and took < BODY_TIMEOUT + 5, took


def test_protocol_errors_answer_in_openai_shape(service: ServiceProcess) -> None:
    cases = [
        (b"NOT HTTP AT ALL\r\n\r\n", 400),
        (b"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n", 400),
        (b"GET /v1/assistants HTTP/1.1\r\nBad Header Name: x\r\n\r\n", 400),
        (
            b"GET /v1/assistants HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"a" * (MAX_HEADER_BYTES + 1)
            + b"\r\n\r\n",
            431,
        ),
    ]
    for request, status in cases:
        raw, _ = exchange(service, request)
        got, error = error_of(raw)
        assert got == status and error["type"] == "invalid_request_error", raw
    assert "Traceback" not in service.log()


def test_kept_alive_connections_still_work(service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.base_url, headers=KEY) as client:
        for _ in range(3):
            assert client.get("/v1/assistants").status_code == 200
            time.sleep(HEADER_TIMEOUT / 2)
        refused = client.post("/v1/assistants", content=b"x" * (MAX_BODY + 1))
        assert_refused(refused, 413)
        assert client.get("/v1/assistants").status_code == 200
