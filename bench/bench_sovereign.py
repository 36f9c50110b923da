"""Benchmark sovereign against the same scripted upstream called directly and behind LiteLLM.

    .venv/bin/python bench/bench_sovereign.py [--requests 500] [--rate 2000] [--no-litellm]

Prints added latency (median, p99) of non-streamed requests, streamed token throughput at
the scripted rate, and whether 100 concurrent streams complete, for each path in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_upstream import run_openai_upstream  # noqa: E402
from tests.fakes.process import stop_process  # noqa: E402
from tests.fakes.sovereign import run_sovereign  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

MODEL = "fake-model"
# Without it the blocking client's headers-then-body writes meet delayed ACKs (~40 ms).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
# LiteLLM's proxy refuses to start without a master key; every path is sent it.
BENCH_KEY = "sk-" + secrets.token_hex(32)
HEADERS = {"Authorization": f"Bearer {BENCH_KEY}"}


def words(count: int) -> list[str]:
    # Distinct tokens: LiteLLM aborts a stream that repeats one chunk 100 times.
    return [f"w{i} " for i in range(count)]


def script(stream_tokens: int, rate: float, concurrent_tokens: int) -> dict[str, Any]:
    return {
        "models": [MODEL],
        "responses": [
            {"match": "[short]", "text": "ok", "repeat": True},
            {
                "match": "[stream]",
                "tokens": words(stream_tokens),
                "tokens_per_s": rate,
                "repeat": True,
            },
            {
                "match": "[many]",
                "tokens": words(concurrent_tokens),
                "tokens_per_s": rate,
                "repeat": True,
            },
        ],
    }


@contextmanager
def run_litellm(upstream_base: str) -> Iterator[str | None]:
    """LiteLLM's proxy in front of the upstream, or None when it is not installed."""
    exe = shutil.which("litellm", path=str(Path(sys.executable).parent))
    if exe is None:
        print("litellm: not installed (pip install 'litellm[proxy]'); its column is skipped")
        yield None
        return
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream_base,
                    "api_key": "unused",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config, f)
    port = free_port()  # LiteLLM's CLI binds its own port
    log = open(os.environ.get("BENCH_LITELLM_LOG", os.devnull), "w+b")  # noqa: SIM115
    env = {
        **os.environ,
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_MASTER_KEY": BENCH_KEY,
    }
    proc = subprocess.Popen(
        [exe, "--config", f.name, "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-1500:]
                print(f"litellm: exited with {proc.returncode}; skipped. Output:\n{tail}")
                yield None
                return
            try:
                if httpx.get(url + "/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                print("litellm: not ready within 180 s; skipped")
                yield None
                return
            time.sleep(0.25)
        yield url + "/v1"
    finally:
        stop_process(proc, grace=10)
        log.close()
        os.unlink(f.name)


def body(case: str, stream: bool) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": case}], "stream": stream}


def latencies(targets: dict[str, str], count: int) -> dict[str, list[float]]:
    """Sequential non-streamed requests, interleaved across targets to share any noise."""
    clients = {
        name: httpx.Client(
            base_url=url,
            headers=HEADERS,
            timeout=30,
            transport=httpx.HTTPTransport(socket_options=NODELAY),
        )
        for name, url in targets.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for i in range(count + 50):
            for name, client in clients.items():
                start = time.perf_counter()
                response = client.post("/chat/completions", json=body("[short]", False))
                elapsed = time.perf_counter() - start
                if response.status_code != 200:
                    raise SystemExit(f"{name}: {response.status_code} {response.text[:500]}")
                if i >= 50:  # warm-up: connections, caches, lazy imports
                    samples[name].append(elapsed * 1000)
    finally:
        for client in clients.values():
            client.close()
    return samples


async def stream_rate(client: httpx.AsyncClient, case: str) -> tuple[int, float, bool]:
    """(content chunks, their rate per second after the first, ended with [DONE])."""
    times: list[float] = []
    done = False
    async with client.stream("POST", "/chat/completions", json=body(case, True)) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: [DONE]"):
                done = True
            elif '"content":"w' in line.replace(" ", ""):
                times.append(time.perf_counter())
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return len(times), rate, done


async def throughput(url: str, runs: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60, headers=HEADERS) as client:
        await stream_rate(client, "[many]")  # warm-up
        return [(await stream_rate(client, "[stream]"))[1] for _ in range(runs)]


async def concurrent(url: str, streams: int, tokens: int) -> tuple[int, float, float, str]:
    """(streams complete with every token and [DONE], wall seconds, tokens/s, first failure)."""
    limits = httpx.Limits(max_connections=streams + 10)
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=limits, headers=HEADERS
    ) as client:
        start = time.perf_counter()
        results = await asyncio.gather(
            *(stream_rate(client, "[many]") for _ in range(streams)), return_exceptions=True
        )
        wall = time.perf_counter() - start
    ok = [r for r in results if not isinstance(r, BaseException) and r[0] == tokens and r[2]]
    failures = [r for r in results if isinstance(r, BaseException)]
    short = [r for r in results if not isinstance(r, BaseException) and r not in ok]
    first = repr(failures[0])[:120] if failures else (f"incomplete: {short[0]}" if short else "")
    return len(ok), wall, sum(r[0] for r in ok) / wall, first


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rate", type=float, default=2000.0, help="scripted tokens per second")
    parser.add_argument("--stream-tokens", type=int, default=2000)
    parser.add_argument("--stream-runs", type=int, default=3)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--concurrent-tokens", type=int, default=200)
    parser.add_argument("--no-litellm", action="store_true")
    args = parser.parse_args()

    fake = script(args.stream_tokens, args.rate, args.concurrent_tokens)
    with (
        run_openai_upstream(fake) as upstream,
        run_sovereign(env={"SOVEREIGN_BACKEND_URL": upstream.base_url}) as sovereign,
        nullcontext() if args.no_litellm else run_litellm(upstream.base_url) as litellm,
    ):
        targets = {"direct": upstream.base_url, "sovereign": sovereign.base_url}
        if litellm:
            targets["litellm"] = litellm
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"cpus={os.cpu_count()}  load={load}  python={sys.version.split()[0]}")

        # Each proxy is timed against direct calls interleaved with its own, so both see
        # the same machine load; LiteLLM's after-response work stays out of sovereign's.
        print(f"\nnon-streamed latency over {args.requests} sequential requests (ms)")
        print(f"{'path':<10} {'median':>8} {'p99':>8} {'added median':>13} {'added p99':>10}")
        for name in [n for n in targets if n != "direct"]:
            pair = {"direct": targets["direct"], name: targets[name]}
            samples = latencies(pair, args.requests)
            base_median, base_p99 = statistics.median(samples["direct"]), p99(samples["direct"])
            for label, values in (("  direct", samples["direct"]), (name, samples[name])):
                median, high = statistics.median(values), p99(values)
                print(
                    f"{label:<10} {median:8.3f} {high:8.3f} "
                    f"{median - base_median:13.3f} {high - base_p99:10.3f}"
                )

        print(f"\nstreamed throughput, {args.stream_tokens} tokens scripted at {args.rate:g}/s")
        print(f"{'path':<10} {'tokens/s (median of runs)':>26} {'% of direct':>12}")
        direct_rate = None
        for name, url in targets.items():
            rate = statistics.median(asyncio.run(throughput(url, args.stream_runs)))
            direct_rate = direct_rate or rate
            print(f"{name:<10} {rate:26.1f} {100 * rate / direct_rate:11.1f}%")

        print(f"\n{args.streams} concurrent streams of {args.concurrent_tokens} tokens")
        print(f"{'path':<10} {'complete':>9} {'wall s':>8} {'tokens/s, all streams':>22}")
        for name, url in targets.items():
            done, wall, rate, failure = asyncio.run(
                concurrent(url, args.streams, args.concurrent_tokens)
            )
            print(f"{name:<10} {done:>5}/{args.streams:<3} {wall:8.2f} {rate:22.1f}  {failure}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at the end: {load} (the machine is shared; figures move with it)")


if __name__ == "__main__":
    main()
