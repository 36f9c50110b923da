"""Benchmark streamed runs: what the assistants service adds to the upstream's stream.

    .venv/bin/python bench/bench_runs.py [--samples 30] [--concurrent 200] [--database-url URL]

The upstream is the scripted OpenAI-compatible server at 2,000 tokens/s. Prints the time to
the first ``thread.message.delta`` minus the upstream's own time to first token (median),
relayed tokens/s against the upstream's, whether N concurrent streaming runs all complete,
and the service's peak resident memory. Targets: < 15 ms added, >= 90 % of the rate, all
runs complete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_upstream import run_openai_upstream  # noqa: E402
from tests.support.processes import ServiceProcess, run_assistants  # noqa: E402

RATE = 2000
HEADERS = {"Authorization": "Bearer test-key"}
# Without it the blocking client's headers-then-body writes meet delayed ACKs (~40 ms).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


def sync_client(base_url: str) -> httpx.Client:
    """One keep-alive client per target, so both paths are measured the same way."""
    transport = httpx.HTTPTransport(socket_options=NODELAY)
    return httpx.Client(base_url=base_url, headers=HEADERS, timeout=60, transport=transport)


def script(stream_tokens: int, concurrent_tokens: int) -> list[dict[str, Any]]:
    first = 0.05
    return [
        {"match": "[ttft]", "tokens": ["t "] * 20, "first_token_delay": first,
         "tokens_per_s": RATE, "repeat": True},
        {"match": "[rate]", "tokens": ["r "] * stream_tokens, "tokens_per_s": RATE,
         "repeat": True},
        {"match": "[many]", "tokens": ["m "] * concurrent_tokens, "first_token_delay": first,
         "tokens_per_s": RATE, "repeat": True},
    ]  # fmt: skip


class PeakRss:
    """Samples a process's resident memory every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upstream_stream(client: httpx.Client, word: str) -> list[float]:
    """Arrival times of content chunks when calling the upstream directly, from send."""
    body = {
        "model": "fake-model",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": word}],
    }
    times: list[float] = []
    started = time.perf_counter()
    with client.stream("POST", "/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and '"content":"' in line and '"content":""' not in line:
                times.append(time.perf_counter() - started)
    return times


def service_stream(client: httpx.Client, thread_id: str, assistant_id: str) -> list[float]:
    """Arrival times of thread.message.delta events of a streamed run, from send."""
    times: list[float] = []
    started = time.perf_counter()
    with client.stream(
        "POST",
        f"/threads/{thread_id}/runs",
        json={"assistant_id": assistant_id, "stream": True},
    ) as response:
        for line in response.iter_lines():
            if line == "event: thread.message.delta":
                times.append(time.perf_counter() - started)
    return times


def new_thread(client: httpx.Client, word: str) -> str:
    body = {"messages": [{"role": "user", "content": word}]}
    return client.post("/threads", json=body).json()["id"]


def rate(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


async def concurrent_runs(base_url: str, assistant_id: str, thread_ids: list[str]) -> dict:
    limits = httpx.Limits(max_connections=len(thread_ids) + 10)
    async with httpx.AsyncClient(
        base_url=base_url, headers=HEADERS, timeout=120, limits=limits
    ) as client:

        async def one(thread_id: str) -> tuple[bool, float | None, int]:
            started = time.perf_counter()
            first: float | None = None
            deltas, last_event, done = 0, None, False
            body = {"assistant_id": assistant_id, "stream": True}
            async with client.stream("POST", f"/threads/{thread_id}/runs", json=body) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("event: "):
                        name = line[7:]
                        if name == "thread.message.delta":
                            deltas += 1
                            first = first or time.perf_counter() - started
                        elif name == "done":
                            done = True
                        else:
                            last_event = name
            return done and last_event == "thread.run.completed", first, deltas

        started = time.perf_counter()
        results = await asyncio.gather(*(one(t) for t in thread_ids), return_exceptions=True)
        wall = time.perf_counter() - started
    ok = [r for r in results if isinstance(r, tuple) and r[0]]
    errors = [repr(r) for r in results if isinstance(r, BaseException)]
    firsts = sorted(r[1] for r in ok if r[1] is not None)
    return {
        "completed": len(ok),
        "errors": errors[:3],
        "wall_s": wall,
        "ttft_p50_ms": statistics.median(firsts) * 1000 if firsts else None,
        "ttft_p99_ms": firsts[int(len(firsts) * 0.99) - 1] * 1000 if firsts else None,
        "deltas": sum(r[2] for r in ok),
    }


def bench(
    service: ServiceProcess, upstream_url: str, upstream_pid: int, args: argparse.Namespace
) -> dict:
    api = sync_client(f"{service.base_url}/v1")
    direct = sync_client(upstream_url)
    assistant_id = api.post("/assistants", json={"model": "fake-model"}).json()["id"]
    # Warm both paths (connections, caches) before measuring.
    for _ in range(3):
        upstream_stream(direct, "[ttft]")
        service_stream(api, new_thread(api, "[ttft]"), assistant_id)
    upstream_ttft, service_ttft = [], []
    for _ in range(args.samples):
        upstream_ttft.append(upstream_stream(direct, "[ttft]")[0])
        thread_id = new_thread(api, "[ttft]")
        service_ttft.append(service_stream(api, thread_id, assistant_id)[0])
    up_rate = rate(upstream_stream(direct, "[rate]"))
    relayed = service_stream(api, new_thread(api, "[rate]"), assistant_id)
    threads = [new_thread(api, "[many]") for _ in range(args.concurrent)]
    # CPU seconds of each process during the concurrent phase: on a small machine the
    # service, the scripted upstream and this client share the cores.
    procs = {"service": psutil.Process(service.proc.pid), "upstream": psutil.Process(upstream_pid)}
    before = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
    with PeakRss(service.proc.pid) as rss:
        load = asyncio.run(concurrent_runs(f"{service.base_url}/v1", assistant_id, threads))
    cpu = {name: round(sum(p.cpu_times()[:2]) - before[name], 2) for name, p in procs.items()}
    up_median = statistics.median(upstream_ttft) * 1000
    svc_median = statistics.median(service_ttft) * 1000
    return {
        "upstream_ttft_ms": round(up_median, 2),
        "service_ttft_ms": round(svc_median, 2),
        "added_ttft_ms_median": round(svc_median - up_median, 2),
        # Pairwise (each service sample against the upstream sample taken just before it),
        # so that moments of machine load hit both sides of a difference.
        "added_ttft_ms_p90": round(
            statistics.quantiles(
                [(s - u) * 1000 for s, u in zip(service_ttft, upstream_ttft, strict=True)], n=10
            )[-1],
            2,
        ),
        "upstream_tokens_per_s": round(up_rate),
        "relayed_tokens_per_s": round(rate(relayed)),
        "relayed_tokens": len(relayed),
        "relayed_vs_upstream_pct": round(100 * rate(relayed) / up_rate, 1),
        "concurrent": args.concurrent,
        "concurrent_completed": load["completed"],
        "concurrent_wall_s": round(load["wall_s"], 2),
        "concurrent_ttft_p50_ms": load["ttft_p50_ms"] and round(load["ttft_p50_ms"], 1),
        "concurrent_ttft_p99_ms": load["ttft_p99_ms"] and round(load["ttft_p99_ms"], 1),
        "concurrent_errors": load["errors"],
        "concurrent_cpu_s_service": cpu["service"],
        "concurrent_cpu_s_upstream": cpu["upstream"],
        "peak_rss_mb": round(rss.peak / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--stream-tokens", type=int, default=2000)
    parser.add_argument("--concurrent-tokens", type=int, default=100)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{tmp}/bench.db"
        with run_openai_upstream(script(args.stream_tokens, args.concurrent_tokens)) as up:
            env = {"SOVEREIGN_PLAYGROUND_URL": up.url, "LOG_LEVEL": "WARNING"}
            with run_assistants(database_url, Path(tmp) / "service.log", env=env) as service:
                results = bench(service, up.base_url, up.proc.pid, args)
    results["database"] = database_url.split(":", 1)[0]
    print(json.dumps(results, indent=2))
    print(
        f"added to first token: median {results['added_ttft_ms_median']} ms (target < 15), "
        f"p90 {results['added_ttft_ms_p90']} ms\n"
        f"relayed rate: {results['relayed_tokens_per_s']} tok/s = "
        f"{results['relayed_vs_upstream_pct']}% of the upstream's "
        f"{results['upstream_tokens_per_s']} tok/s (target >= 90%)\n"
        f"{results['concurrent_completed']}/{results['concurrent']} concurrent streaming runs "
        f"completed in {results['concurrent_wall_s']} s\n"
        f"peak RSS of the service: {results['peak_rss_mb']} MB"
    )


if __name__ == "__main__":
    main()
