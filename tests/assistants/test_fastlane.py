"""The messages fast lane (api/fastlane.py) against the FastAPI routes it stands in front of.

One script of requests, run against a service with the fast lane and one without (each on
its own fresh database), must get the same answers, as must a non-ASCII API key sent as raw
bytes; and, in process, the lane must answer well-formed requests itself and hand
everything else, body intact, to the routes.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from services.assistants.api.fastlane import (
    ASGIApp,
    Message,
    MessagesFastLane,
    Receive,
    Scope,
    Send,
)
from services.assistants.app import create_app
from services.assistants.config import Settings
from tests.conftest import DATABASES
from tests.support.databases import fresh_postgres, sqlite_url
from tests.support.openapi import assert_matches
from tests.support.processes import (
    ServiceProcess,
    free_port,
    migrate,
    start_assistants,
    wait_until,
)

API_KEY = "test-key"
BEARER = {"Authorization": f"Bearer {API_KEY}"}
JSON = "application/json"
JSON_TYPE = {"Content-Type": JSON}
UNKNOWN_THREAD = "thread_doesnotexist"
# Object ids are a type prefix and 24 base62 characters (services/assistants/ids.py).
OBJECT_ID = re.compile(r"\b[a-z]+[_-][A-Za-z0-9]{24}\b")
TIMESTAMPS = {"created_at", "completed_at", "incomplete_at"}


# -- the differential test ---------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One response as compared: status, content type, and the body with ids and times
    normalised (JSON when it parses, else text)."""

    status: int
    content_type: str | None
    body: Any


@dataclass
class Normaliser:
    """Each id becomes its order of first appearance (``msg_#1``); integer times a mark."""

    ids: dict[str, str] = field(default_factory=dict)

    def _id(self, match: re.Match[str]) -> str:
        raw = match.group(0)
        if raw not in self.ids:
            prefix = re.split(r"[_-]", raw, maxsplit=1)[0]
            self.ids[raw] = f"{prefix}_#{len(self.ids) + 1}"
        return self.ids[raw]

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, str):
            return OBJECT_ID.sub(self._id, value)
        if isinstance(value, int) and not isinstance(value, bool) and key in TIMESTAMPS:
            return "<timestamp>"
        return value


Expect = int | tuple[int, ...]


@dataclass
class Transcript:
    """The script's requests against one service, each outcome recorded under a label."""

    client: httpx.Client
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    normalise: Normaliser = field(default_factory=Normaliser)

    def call(self, label: str, expect: Expect, method: str, url: str, **kwargs: Any) -> Any:
        """Send one request; record its outcome; return its (raw) JSON body or None."""
        assert label not in self.outcomes, f"duplicate label {label!r}"
        response = self.client.request(method, url, **kwargs)
        try:
            raw: Any = response.json()
            body = self.normalise(raw)
        except ValueError:
            raw, body = None, response.text
        self.outcomes[label] = Outcome(
            response.status_code, response.headers.get("content-type"), body
        )
        if response.status_code not in (expect if isinstance(expect, tuple) else (expect,)):
            self.unexpected.append(f"{label}: {response.status_code} (expected {expect}) {body}")
        return raw


def run_script(base_url: str) -> Transcript:
    """The same requests, in the same order, whatever the service answers."""
    with httpx.Client(base_url=f"{base_url}/v1", timeout=30) as client:
        t = Transcript(client)
        thread = t.call("create thread", 200, "POST", "/threads", json={}, headers=BEARER)
        messages = f"/threads/{thread['id']}/messages"
        unknown = f"/threads/{UNKNOWN_THREAD}/messages"

        def post(label: str, expect: Expect, url: str = messages, **kwargs: Any) -> Any:
            return t.call(f"create: {label}", expect, "POST", url, **{"headers": BEARER, **kwargs})

        def get(label: str, expect: Expect, url: str = messages, **kwargs: Any) -> Any:
            return t.call(f"list: {label}", expect, "GET", url, **{"headers": BEARER, **kwargs})

        def typed(content_type: str) -> dict[str, str]:
            return {**BEARER, "Content-Type": content_type}

        # Accepted: well-formed creates, however the key comes.
        post("string", 200, json={"role": "user", "content": "hello"})
        parts = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
        post("text parts", 200, json={"role": "assistant", "content": parts})
        extras = {
            "role": "user",
            "content": "with extras",
            "metadata": {"topic": "fast lane", "n": "3"},
            # code_interpreter: a file_search attachment names a file that must exist.
            "attachments": [{"file_id": "file-abc123", "tools": [{"type": "code_interpreter"}]}],
        }
        post("metadata and attachments", 200, json=extras)
        image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
        post("image_url part", 200, json={"role": "user", "content": [image]})
        by_header = {"role": "user", "content": "x-api-key"}
        post("key via X-API-Key", 200, json=by_header, headers={"X-API-Key": API_KEY})
        lower = {"Authorization": f"bearer {API_KEY}"}
        post(
            "key via lowercase bearer",
            200,
            json={"role": "user", "content": "lower"},
            headers=lower,
        )
        accented = '{"role": "user", "content": "h\u00e9llo \u2713"}'.encode()
        post(
            "charset=utf-8", 200, content=accented, headers=typed("application/json; charset=utf-8")
        )
        cased = b'{"role": "user", "content": "case"}'
        post("Application/JSON", 200, content=cased, headers=typed("Application/JSON"))
        bom = b'\xef\xbb\xbf{"role": "user", "content": "bom"}'
        post("UTF-8 byte order mark", 200, content=bom, headers=typed(JSON))
        # Past 64 bits, an integer becomes a float on every route (as in JavaScript).
        huge = b'{"role": "user", "content": "n", "attachments": [{"file_id": "f", '
        huge += b'"tools": [{"type": "code_interpreter", "n": 123456789012345678901234567890}]}]}'
        post("integer past 64 bits", 200, content=huge, headers=typed(JSON))

        # Accepted: lists and pages.
        get("defaults", 200)
        first = get("limit=2", 200, params={"limit": 2})
        second = get("limit=2 after", 200, params={"limit": 2, "after": first["last_id"]})
        get("limit=1 before", 200, params={"limit": 1, "before": second["first_id"]})
        get("limit=2 before", 200, params={"limit": 2, "before": second["last_id"]})
        oldest = [m["id"] for m in get("order=asc", 200, params={"order": "asc"})["data"]]
        get("order=asc limit=2 after", 200, params={"order": "asc", "limit": 2, "after": oldest[0]})
        between = {"order": "asc", "after": oldest[0], "before": oldest[4]}
        get("order=asc after and before", 200, params=between)
        get("order=desc limit=100", 200, params={"order": "desc", "limit": 100})
        get("limit=007", 200, f"{messages}?limit=007")
        get("limit repeated, last valid", 200, f"{messages}?limit=0&limit=3")
        get("run_id matching nothing", 200, params={"run_id": "run_nothingmatchesthis"})
        get("unknown params", 200, f"{messages}?foo=bar&limit=3&empty=&x")
        get("blank after", 200, f"{messages}?after=&limit=2")
        get("key via X-API-Key", 200, headers={"X-API-Key": API_KEY})

        # Accepted, answered with a domain error.
        post("unknown thread", 404, unknown, json={"role": "user", "content": "nowhere"})
        get("unknown thread", 404, unknown)
        get("unknown thread, unknown after", 404, unknown, params={"after": "msg_unknown"})
        get("after=<unknown id>", 400, params={"after": "msg_unknown"})
        get("before=<unknown id>", 400, params={"before": "msg_unknown"})

        # Declined bodies: the routes explain them.
        for name, body in [
            ("not JSON", b"this is not json"),
            ("truncated JSON", b'{"role": "user", "content": '),
            ("empty", b""),
            ("JSON array", b'[{"role": "user", "content": "hi"}]'),
            ("JSON string", b'"hello"'),
            ("JSON null", b"null"),
            ("role missing", b'{"content": "hi"}'),
            ("role system", b'{"role": "system", "content": "hi"}'),
            ("content missing", b'{"role": "user"}'),
            ("empty content list", b'{"role": "user", "content": []}'),
            ("bad part", b'{"role": "user", "content": [{"type": "image_url"}]}'),
            ("extra field", b'{"role": "user", "content": "hi", "extra": 1}'),
            ("metadata not strings", b'{"role": "user", "content": "hi", "metadata": {"a": 1}}'),
            ("NUL in content", b'{"role": "user", "content": "a\\u0000b"}'),
            ("lone surrogate", b'{"role": "user", "content": "a\\ud800b"}'),
            (
                "nested 100 deep",
                b'{"role": "user", "content": "a", "attachments": [{"file_id": "f", "tools": '
                + b"[" * 100
                + b"]" * 100
                + b"}]}",
            ),
        ]:
            post(name, 400, content=body, headers=typed(JSON))
        system = b'{"role": "system", "content": "hi"}'
        post("invalid body, unknown thread", 400, unknown, content=system, headers=typed(JSON))
        valid = b'{"role": "user", "content": "declined"}'
        post("Content-Type text/plain", 400, content=valid, headers=typed("text/plain"))
        vendor = typed("application/vnd.api+json")
        post("Content-Type application/vnd.api+json", 200, content=valid, headers=vendor)

        # Declined queries.
        for query in ["limit=0", "limit=101", "limit=abc", "limit=-1", "limit="]:
            get(query, 400, f"{messages}?{query}")
        for query in ["order=sideways", "order=ASC", "order="]:
            get(query, 400, f"{messages}?{query}")
        # Not plain digits, so declined; the routes read them as numbers.
        for query in ["limit=%205", "limit=1_0", "limit=2.0"]:
            get(query, 200, f"{messages}?{query}")

        # Declined keys.
        hello = {"role": "user", "content": "hi"}
        wrong = {"Authorization": "Bearer wrong-key"}
        for how, headers in [
            ("missing key", {}),
            ("wrong key", wrong),
            ("wrong X-API-Key", {"X-API-Key": "wrong-key"}),
            ("wrong X-API-Key, right bearer", {"X-API-Key": "wrong", **BEARER}),
            ("empty X-API-Key, right bearer", {"X-API-Key": "", **BEARER}),
            ("Basic scheme", {"Authorization": f"Basic {API_KEY}"}),
        ]:
            post(how, 401, json=hello, headers=headers)
            get(how, 401, headers=headers)
        post("wrong key, invalid body", 400, content=b"not json", headers={**wrong, **JSON_TYPE})
        get("wrong key, invalid limit", 401, params={"limit": 0}, headers=wrong)

        # Other methods and paths under the same prefix go to the routes.
        t.call("PUT messages", 405, "PUT", messages, json=hello, headers=BEARER)
        t.call("DELETE messages", 405, "DELETE", messages, headers=BEARER)
        t.call("retrieve a message", 200, "GET", f"{messages}/{oldest[0]}", headers=BEARER)
        get("trailing slash", 307, f"{messages}/")
        get("NUL in thread id", (404, 400), "/threads/thread%00x/messages")

        # Side effects: every message created so far, once per service.
        everything = {"order": "asc", "limit": 100}
        get("everything after the declined requests", 200, params=everything)

        # No Content-Type at all, last: a difference here must not shift the pages above.
        post("no Content-Type", 400, content=valid)
        get("everything at the end", 200, params=everything)
        return t


def sqlite_pair(directory: Path) -> list[str]:
    folders = [directory / "fast-db", directory / "routes-db"]
    for folder in folders:
        folder.mkdir()
    return [sqlite_url(folder) for folder in folders]


@pytest.fixture(params=DATABASES)
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """Two fresh, empty databases of one kind: one per service."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            urls = sqlite_pair(tmp_path)
        else:
            urls = [stack.enter_context(fresh_postgres()) for _ in range(2)]
        yield urls


@contextmanager
def lane_and_routes(
    urls: list[str], logs: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    """A service with the fast lane (the default) and one without, on ``urls``."""
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(migrate, urls))
    envs = [{**(env or {})}, {**(env or {}), "API_FAST_LANE": "false"}]
    with ExitStack() as stack:
        services = []
        for name, url, service_env in zip(("fast", "routes"), urls, envs, strict=True):
            service = start_assistants(url, logs / f"{name}.log", env=service_env, wait=False)
            stack.callback(service.stop)
            services.append(service)
        for service in services:
            service.wait_started()
        yield services[0], services[1]


def on_both(
    script: Callable[[str], Transcript], services: tuple[ServiceProcess, ServiceProcess]
) -> tuple[Transcript, Transcript]:
    """``script`` against the fast lane's service and the routes' service, side by side."""
    with ThreadPoolExecutor(2) as pool:
        lane, reference = pool.map(script, [service.base_url for service in services])
    return lane, reference


def assert_same_answers(lane: Transcript, reference: Transcript) -> None:
    """Every request answered alike; and the routes answered as the script expects."""
    assert list(lane.outcomes) == list(reference.outcomes)
    differences = [
        f"{label}:\n  fast lane: {lane.outcomes[label]}\n  routes:    {outcome}"
        for label, outcome in reference.outcomes.items()
        if lane.outcomes[label] != outcome
    ]
    problems = []
    if differences:
        problems.append("the fast lane answers differently:\n" + "\n".join(differences))
    if reference.unexpected:
        problems.append("the routes answered unexpectedly:\n" + "\n".join(reference.unexpected))
    assert not problems, "\n\n".join(problems)


def test_fast_lane_answers_as_the_routes_do(two_databases: list[str], tmp_path: Path) -> None:
    with lane_and_routes(two_databases, tmp_path) as services:
        assert_same_answers(*on_both(run_script, services))


NON_ASCII_KEY = "cl\u00e9-secr\u00e8te"


def key_script(base_url: str) -> Transcript:
    """A key with non-ASCII characters, sent as its UTF-8 and as its Latin-1 bytes."""
    with httpx.Client(base_url=f"{base_url}/v1", timeout=30) as client:
        t = Transcript(client)
        latin1 = {"X-API-Key": NON_ASCII_KEY.encode("latin-1")}
        thread = t.call(
            "create thread (Latin-1 key)", 200, "POST", "/threads", json={}, headers=latin1
        )
        messages = f"/threads/{thread['id']}/messages"
        hello = {"role": "user", "content": "hi"}
        for encoding, expect in [("latin-1", 200), ("utf-8", 401)]:
            key = NON_ASCII_KEY.encode(encoding)
            for how, headers in [
                ("X-API-Key", {"X-API-Key": key}),
                ("bearer", {"Authorization": b"Bearer " + key}),
            ]:
                label = f"{how}, {encoding} bytes"
                t.call(f"create: {label}", expect, "POST", messages, json=hello, headers=headers)
                t.call(f"list: {label}", expect, "GET", messages, headers=headers)
        return t


def test_fast_lane_checks_a_non_ascii_key_as_the_routes_do(tmp_path: Path) -> None:
    urls = sqlite_pair(tmp_path)
    with lane_and_routes(urls, tmp_path, {"API_KEY": NON_ASCII_KEY}) as services:
        assert_same_answers(*on_both(key_script, services))


# -- the lane answers, or hands on untouched ---------------------------------------------


@dataclass
class Handed:
    """A request the lane passed on: what the app behind it saw."""

    method: str
    path: str
    body: bytes = b""


class Counting:
    """An ASGI app in front of another, recording each HTTP request and the body it reads."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.handed: list[Handed] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handed = Handed(scope["method"], scope["path"])
        self.handed.append(handed)

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                handed.body += message.get("body", b"")
            return message

        await self.app(scope, recording, send)


def _fast_lane(app: Any) -> MessagesFastLane:
    node = app.middleware_stack
    while node is not None and not isinstance(node, MessagesFastLane):
        node = getattr(node, "app", None)
    assert isinstance(node, MessagesFastLane), "no MessagesFastLane in the middleware stack"
    return node


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[str, Counting]]:
    """The app served in this process by uvicorn, the app behind the lane counted."""
    url = sqlite_url(tmp_path)
    migrate(url)
    settings = Settings(
        database_url=url,
        api_key=API_KEY,
        api_fast_lane=True,
        sovereign_playground_url="http://127.0.0.1:9",
    )
    app = create_app(settings)
    app.middleware_stack = app.build_middleware_stack()
    lane = _fast_lane(app)
    counting = Counting(lane.app)
    lane.app = counting
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-fastlane", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive())
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}", counting
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"


def _assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert_matches("ErrorResponse", body)
    assert list(body) == ["error"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_lane_answers_well_formed_requests_and_hands_on_the_rest(
    counted: tuple[str, Counting],
) -> None:
    base_url, counting = counted
    with httpx.Client(base_url=f"{base_url}/v1", headers=BEARER, timeout=30) as client:
        thread_id = client.post("/threads", json={}).json()["id"]
        messages = f"/threads/{thread_id}/messages"
        assert [h.path for h in counting.handed] == ["/v1/threads"]

        def handed_on(request: Callable[[], httpx.Response]) -> tuple[httpx.Response, int]:
            before = len(counting.handed)
            response = request()
            return response, len(counting.handed) - before

        created, count = handed_on(
            lambda: client.post(messages, json={"role": "user", "content": "fast"})
        )
        assert (created.status_code, count) == (200, 0), created.text
        assert created.headers["content-type"] == "application/json"
        message = created.json()
        assert message["object"] == "thread.message" and message["thread_id"] == thread_id

        listed, count = handed_on(lambda: client.get(messages, params={"limit": 5}))
        assert (listed.status_code, count) == (200, 0), listed.text
        assert [m["id"] for m in listed.json()["data"]] == [message["id"]]

        wrong, count = handed_on(
            lambda: client.post(
                messages,
                json={"role": "user", "content": "no"},
                headers={"Authorization": "Bearer wrong-key"},
            )
        )
        assert count == 1
        assert _assert_openai_error(wrong, 401)["code"] == "invalid_api_key"

        invalid = b'{"role": "system", "content": "not a role"}'
        refused, count = handed_on(
            lambda: client.post(messages, content=invalid, headers=JSON_TYPE)
        )
        assert count == 1
        error = _assert_openai_error(refused, 400)
        assert error["param"] == "role" and error["type"] == "invalid_request_error"
        assert counting.handed[-1] == Handed("POST", f"/v1{messages}", invalid)

        zero, count = handed_on(lambda: client.get(messages, params={"limit": 0}))
        assert count == 1
        assert _assert_openai_error(zero, 400)["param"] == "limit"

        # Nothing the routes refused was stored.
        after, count = handed_on(lambda: client.get(messages))
        assert count == 0
        assert [m["id"] for m in after.json()["data"]] == [message["id"]]
