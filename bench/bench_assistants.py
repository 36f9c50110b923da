"""Benchmark the assistants state layer against a bare FastAPI endpoint served the same way.

    .venv/bin/python bench/bench_assistants.py [--seconds 8] [--rounds 3] [--concurrency 16]

Prints, for message create and list-page requests at the given concurrency, the service's
requests per second and p50/p99 latency beside a bare FastAPI app's (the ceiling), and
list-page latency on a thread of 100,000 messages against one of 100. Both servers are
``uvicorn.run`` with the same settings, each in its own process, on SQLite. A
micro-benchmark of two routes: the headline one, a workload shaped like real use, is
``bench_mixed.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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

import psutil
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

# A request maker gives each worker a function returning (kind, raw request bytes); the
# kind lets one run time several sorts of request under exactly the same conditions.
Maker = Callable[[int], Callable[[], tuple[str, bytes]]]


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    count: int
    errors: int = 0
    cpu_ms: float | None = None  # server CPU time (all threads) per request


def _request(method: str, path: str, body: bytes | None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {KEY}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + (body or b"")


async def _worker(
    port: int,
    next_request: Callable[[], tuple[str, bytes]],
    deadline: float,
    latencies: dict[str, list[float]],
    errors: list[str],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < deadline:
            kind, request = next_request()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            latencies.setdefault(kind, []).append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200"):
                errors.append(head.split(b"\r\n")[0].decode() + " " + body[:200].decode())
    finally:
        writer.close()


def _summary(latencies: list[float], elapsed: float) -> Result:
    ordered = sorted(latencies)
    return Result(
        rps=len(ordered) / elapsed,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        count=len(ordered),
    )


async def _load(
    port: int, make: Maker, seconds: float, concurrency: int
) -> tuple[dict[str, Result], int]:
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_worker(port, make(n), deadline, latencies, errors) for n in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  {len(errors)} errors, first: {errors[0]}", file=sys.stderr)
    return {k: _summary(v, elapsed) for k, v in latencies.items()}, len(errors)


def load(
    server: psutil.Process, port: int, make: Maker, seconds: float, concurrency: int
) -> dict[str, Result]:
    """Drive ``port`` for ``seconds``; per kind of request, throughput and latency, with
    the server's CPU time per request (robust to other load on the machine)."""
    cpu_before = sum(server.cpu_times()[:2])
    results, errors = asyncio.run(_load(port, make, seconds, concurrency))
    cpu = sum(server.cpu_times()[:2]) - cpu_before
    total = sum(r.count for r in results.values())
    for result in results.values():
        result.cpu_ms = cpu / total * 1000
        result.errors = errors
    return results


def creating(thread_id: str) -> Maker:
    def make(worker: int) -> Callable[[], tuple[str, bytes]]:
        counter = iter(range(10**9))

        def request() -> tuple[str, bytes]:
            body = json.dumps({"role": "user", "content": f"hello {worker}-{next(counter)}"})
            return "create", _request("POST", f"/v1/threads/{thread_id}/messages", body.encode())

        return request

    return make


def listing(pages: dict[str, str]) -> Maker:
    """Requests cycling through ``pages`` (kind -> path and query), each worker starting
    at a different one, so every kind meets the same conditions."""
    requests = [(kind, _request("GET", path, None)) for kind, path in pages.items()]

    def make(worker: int) -> Callable[[], tuple[str, bytes]]:
        turn = iter(
            itertools.cycle(requests[worker % len(requests) :] + requests[: worker % len(requests)])
        )
        return lambda: next(turn)

    return make


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
    cpu = f"   server CPU {r.cpu_ms:5.2f} ms/req" if r.cpu_ms is not None else ""
    errors = f", {r.errors} errors" if r.errors else ""
    return (
        f"  {label:<30} {r.rps:7.0f} req/s   p50 {r.p50_ms:6.1f} ms   p99 {r.p99_ms:6.1f} ms"
        f"{cpu}   ({r.count} requests{errors})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
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
            servers = {
                "service": (psutil.Process(service.proc.pid), service.port),
                "bare": (psutil.Process(bare.pid), bare_port),
            }
            report(args, servers, threads)
        finally:
            bare.terminate()
            bare.wait(15)
            service.stop()


def report(
    args: argparse.Namespace,
    servers: dict[str, tuple[psutil.Process, int]],
    threads: dict[str, str],
) -> None:
    c, seconds = args.concurrency, args.seconds
    service, port = servers["service"]
    bare, bare_port = servers["bare"]
    cursor = middle_cursor(port, threads["big"])
    messages = "/v1/threads/{}/messages?limit=20"
    small, big = threads["small"], threads["big"]
    cases: dict[str, tuple[psutil.Process, int, Maker]] = {
        "bare create": (bare, bare_port, creating("t")),
        "service create": (service, port, creating(threads["writes"])),
        "bare list": (bare, bare_port, listing({"list": messages.format("t")})),
        "service list": (service, port, listing({"list": messages.format(small)})),
        # One mixed load: pages of the 100- and the 100,000-message threads side by side.
        "service pages": (
            service,
            port,
            listing(
                {
                    "100 messages, newest": messages.format(small),
                    "100k messages, newest": messages.format(big),
                    "100k messages, mid cursor": messages.format(big) + f"&after={cursor}",
                    "100k messages, oldest": messages.format(big) + "&order=asc",
                }
            ),
        ),
    }
    for process, target, make in cases.values():  # warm-up: imports, pools, caches
        load(process, target, make, 1.0, c)
    runs: dict[str, list[Result]] = {}
    for _ in range(args.rounds):
        # Interleaved rounds, so a burst of load from elsewhere hits every case alike.
        for label, (process, target, make) in cases.items():
            for kind, result in load(process, target, make, seconds, c).items():
                key = label if label != "service pages" else kind
                runs.setdefault(key, []).append(result)
    results = {label: best(found) for label, found in runs.items()}

    load_avg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\nconcurrency {c}, {seconds:.0f}s per case, best of {args.rounds} interleaved rounds; "
        f"{os.cpu_count()} CPUs, load average {load_avg}; SQLite (WAL)"
    )
    for label in ("bare create", "service create", "bare list", "service list"):
        print(line(label, results[label]))
    print("  list pages, one mixed load (same conditions for each):")
    for label, result in results.items():
        if "messages" in label:
            print(line("  " + label, result))

    print("\nagainst the targets")
    for kind in ("create", "list"):
        ours, ceiling = results[f"service {kind}"], results[f"bare {kind}"]
        assert ours.cpu_ms and ceiling.cpu_ms
        print(
            f"  {kind:<6} rps / ceiling      {ours.rps / ceiling.rps:6.1%}   "
            f"(by server CPU per request: {ceiling.cpu_ms / ours.cpu_ms:6.1%}; "
            f"target >= {TARGETS['ratio']:.0%})"
        )
    worst_p99 = max(results["service create"].p99_ms, results["service list"].p99_ms)
    print(
        f"  worst p99, create and list   {worst_p99:6.1f} ms (target < {TARGETS['p99_ms']:.0f} ms)"
    )
    base = results["100 messages, newest"]
    for label, result in results.items():
        if label.startswith("100k"):
            print(
                f"  {label:<26} p50 {result.p50_ms / base.p50_ms:5.2f}x, "
                f"p99 {result.p99_ms / base.p99_ms:5.2f}x of 100 messages "
                f"(target <= {TARGETS['big_list_ratio']}x)"
            )


if __name__ == "__main__":
    main()
