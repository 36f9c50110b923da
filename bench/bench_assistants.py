"""Benchmark the assistants state layer against a bare FastAPI endpoint served the same way.

    .venv/bin/python bench/bench_assistants.py [--seconds 8] [--rounds 3] [--concurrency 16]

Prints, for message create and list-page requests at the given concurrency, the service's
requests per second and p50/p99 latency beside a bare FastAPI app's (the ceiling), and
list-page latency on a thread of 100,000 messages against one of 100. Both servers are
``uvicorn.run`` with the same settings, each in its own process, on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.processes import free_port, migrate, start_assistants, wait_http  # noqa: E402

KEY = "test-key"
BIG_THREAD = 100_000
SMALL_THREAD = 100
TARGETS = {"ratio": 0.40, "p99_ms": 50.0, "big_list_ratio": 1.5}


# --- the bare ceiling: same routes and uvicorn settings, no database, no validation ---


def serve_bare(port: int) -> None:
    import uvicorn

    app = FastAPI()
    message = {
        "id": "msg_" + "x" * 24,
        "object": "thread.message",
        "created_at": 1_700_000_000,
        "thread_id": "thread_" + "x" * 24,
        "status": "completed",
        "incomplete_details": None,
        "completed_at": 1_700_000_000,
        "incomplete_at": None,
        "role": "user",
        "content": [{"type": "text", "text": {"value": "hello there", "annotations": []}}],
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
    }
    page = {
        "object": "list",
        "data": [message] * 20,
        "first_id": message["id"],
        "last_id": message["id"],
        "has_more": True,
    }

    @app.post("/v1/threads/{thread_id}/messages")
    async def create(thread_id: str, request: Request) -> dict[str, Any]:
        await request.json()
        return message

    @app.get("/v1/threads/{thread_id}/messages")
    async def listing(thread_id: str) -> dict[str, Any]:
        return page

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    # As services/assistants/__main__.py runs the service at LOG_LEVEL=INFO.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


# --- a lean keep-alive HTTP/1.1 load generator, so the client is not what is measured ---


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    count: int


def _request(method: str, path: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {KEY}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _worker(
    port: int,
    next_request: Callable[[], bytes],
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < deadline:
            request = next_request()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode() + " " + body[:200].decode())
    finally:
        writer.close()


async def _load(
    port: int, make: Callable[[int], Callable[[], bytes]], seconds: float, concurrency: int
) -> Result:
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(port, make(n), deadline, latencies, errors) for n in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    ordered = sorted(latencies)
    return Result(
        rps=len(latencies) / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        errors=len(errors),
        count=len(latencies),
    )


def load(
    port: int, make: Callable[[int], Callable[[], bytes]], seconds: float, concurrency: int
) -> Result:
    return asyncio.run(_load(port, make, seconds, concurrency))


def creating(thread_id: str) -> Callable[[int], Callable[[], bytes]]:
    def make(worker: int) -> Callable[[], bytes]:
        counter = iter(range(10**9))

        def request() -> bytes:
            body = json.dumps({"role": "user", "content": f"hello {worker}-{next(counter)}"})
            return _request("POST", f"/v1/threads/{thread_id}/messages", body.encode())

        return request

    return make


def listing(thread_id: str, query: str = "limit=20") -> Callable[[int], Callable[[], bytes]]:
    request = _request("GET", f"/v1/threads/{thread_id}/messages?{query}", None)
    return lambda _worker: lambda: request


# --- fixtures: a migrated SQLite database with a 100-message and a 100,000-message thread ---


def seed(database_url: str) -> dict[str, str]:
    """Threads written straight into the migrated database (100k rows through the API
    would take minutes); rows are shaped exactly as the service writes them."""
    from sqlalchemy import create_engine, insert

    from services.assistants.config import resolve_database_url
    from services.assistants.ids import new_id
    from services.assistants.tables import Message, Thread

    engine = create_engine(resolve_database_url(database_url))
    threads = {name: new_id("thread_") for name in ("small", "big", "writes")}
    now = int(time.time())
    with engine.begin() as conn:
        conn.execute(
            insert(Thread),
            [
                {"id": tid, "created_at": now, "metadata_": {}, "tool_resources": {}}
                for tid in threads.values()
            ],
        )
        for name, count in (("small", SMALL_THREAD), ("big", BIG_THREAD)):
            rows = [
                {
                    "id": new_id("msg_"),
                    "thread_id": threads[name],
                    "created_at": now,
                    "role": "user",
                    "content": [{"type": "text", "text": {"value": f"m{i}", "annotations": []}}],
                    "status": "completed",
                    "completed_at": now,
                    "attachments": [],
                    "metadata_": {},
                }
                for i in range(count)
            ]
            for start in range(0, count, 10_000):
                conn.execute(insert(Message), rows[start : start + 10_000])
    engine.dispose()
    return threads


def middle_cursor(port: int, thread_id: str) -> str:
    """A message id halfway down the big thread, so a page must seek, not scan from the end."""
    import httpx

    url = f"http://127.0.0.1:{port}/v1/threads/{thread_id}/messages"
    headers = {"Authorization": f"Bearer {KEY}"}
    cursor = None
    # Walk 100-message pages to the middle; also proves pagination across the big thread.
    for _ in range(BIG_THREAD // 200):
        params = {"limit": 100, **({"after": cursor} if cursor else {})}
        cursor = httpx.get(url, params=params, headers=headers).json()["last_id"]
    assert cursor
    return cursor


def best(results: list[Result]) -> Result:
    return max(results, key=lambda r: r.rps)


def line(label: str, r: Result) -> str:
    return (
        f"  {label:<34} {r.rps:8.0f} req/s   p50 {r.p50_ms:6.1f} ms   p99 {r.p99_ms:6.1f} ms"
        f"   ({r.count} requests{f', {r.errors} errors' if r.errors else ''})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="repeats; the best is reported")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    with tempfile.TemporaryDirectory(prefix="bench-assistants-") as tmp:
        database_url = f"sqlite:///{tmp}/assistants.db"
        migrate(database_url)
        t0 = time.perf_counter()
        threads = seed(database_url)
        print(f"seeded {BIG_THREAD + SMALL_THREAD} messages in {time.perf_counter() - t0:.1f}s")
        service = start_assistants(database_url, Path(tmp) / "service.log")
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(bare_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_http(f"http://127.0.0.1:{bare_port}/health", proc=bare)
            report(args, service.port, bare_port, threads)
        finally:
            bare.terminate()
            bare.wait(15)
            service.stop()


def report(args: argparse.Namespace, port: int, bare_port: int, threads: dict[str, str]) -> None:
    c, seconds = args.concurrency, args.seconds
    cursor = middle_cursor(port, threads["big"])
    # Warm both servers (imports, pools, caches) before anything is timed.
    load(port, creating(threads["writes"]), 1.0, c)
    load(port, listing(threads["small"]), 1.0, c)
    load(bare_port, creating("t"), 1.0, c)

    runs: dict[str, list[Result]] = {}
    cases = {
        "bare create": (bare_port, creating("t")),
        "service create": (port, creating(threads["writes"])),
        "bare list": (bare_port, listing("t")),
        "service list (100 messages)": (port, listing(threads["small"])),
        "service list (100k, newest)": (port, listing(threads["big"])),
        "service list (100k, mid cursor)": (
            port,
            listing(threads["big"], f"limit=20&after={cursor}"),
        ),
        "service list (100k, asc)": (port, listing(threads["big"], "limit=20&order=asc")),
    }
    for _ in range(args.rounds):
        # Interleaved rounds, so a burst of load from elsewhere hits every case alike.
        for label, (target, make) in cases.items():
            runs.setdefault(label, []).append(load(target, make, seconds, c))
    results = {label: best(found) for label, found in runs.items()}

    cpu = os.cpu_count()
    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nconcurrency {c}, {seconds:.0f}s per case, best of {args.rounds} rounds; "
        f"{cpu} CPUs, load average {load_avg}; SQLite (WAL)"
    )
    for label, result in results.items():
        print(line(label, result))

    create_ratio = results["service create"].rps / results["bare create"].rps
    list_ratio = results["service list (100 messages)"].rps / results["bare list"].rps
    small = results["service list (100 messages)"].p50_ms
    big = max(
        results[k].p50_ms
        for k in (
            "service list (100k, newest)",
            "service list (100k, mid cursor)",
            "service list (100k, asc)",
        )
    )
    worst_p99 = max(results["service create"].p99_ms, results["service list (100 messages)"].p99_ms)
    print("\nagainst the targets")
    print(f"  create rps / ceiling        {create_ratio:6.1%}  (target >= {TARGETS['ratio']:.0%})")
    print(f"  list rps / ceiling          {list_ratio:6.1%}  (target >= {TARGETS['ratio']:.0%})")
    print(
        f"  worst p99 (create, list)    {worst_p99:6.1f} ms (target < {TARGETS['p99_ms']:.0f} ms)"
    )
    print(
        f"  list p50 at 100k / at 100   {big / small:6.2f}x  "
        f"(target <= {TARGETS['big_list_ratio']}x; worst of newest, mid cursor, asc)"
    )


if __name__ == "__main__":
    main()
