"""Benchmark the code_interpreter sandbox: what a session costs against a bare interpreter.

    .venv/bin/python bench/bench_code_interpreter.py [--samples 20] [--sessions 8]

Prints, as medians over the samples: ``python -c 'print(1)'`` started bare (the baseline,
measured in the same run); ``print(1)`` in a fresh session (bubblewrap, namespaces, the
interpreter starting, the execution); ``print(1)`` in a warm session; then N sessions
executing at once (fresh, then warm, then a CPU-bound snippet). Targets: a warm execution
adds < 50 ms, a fresh session < 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.assistants.sandbox import SandboxPool  # noqa: E402
from services.assistants.sandbox.bwrap import host_interpreter  # noqa: E402

CPU_SNIPPET = "print(sum(i * i for i in range(2_000_000)))"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def bare_python(samples: int) -> float:
    executable = host_interpreter().executable
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run([executable, "-c", "print(1)"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def timed(pool: SandboxPool, key: str, code: str) -> float:
    started = time.perf_counter()
    result = await pool.execute(key, code)
    elapsed = time.perf_counter() - started
    assert result.error is None, result.error
    return elapsed


async def main(samples: int, sessions: int) -> None:
    pool = SandboxPool()
    await pool.ensure_available()
    try:
        bare = bare_python(samples)
        fresh = []
        for n in range(samples):
            fresh.append(await timed(pool, f"fresh-{n}", "print(1)"))
            await pool.close_session(f"fresh-{n}")
        await timed(pool, "warm", "print(1)")
        warm = [await timed(pool, "warm", "print(1)") for _ in range(samples)]
        in_process = []
        for _ in range(samples):
            started = time.perf_counter()
            exec(compile("print(1)", "<bench>", "exec"), {"print": lambda *_: None})
            in_process.append(time.perf_counter() - started)

        keys = [f"many-{i}" for i in range(sessions)]
        started = time.perf_counter()
        many_fresh = await asyncio.gather(*(timed(pool, k, "print(1)") for k in keys))
        fresh_wall = time.perf_counter() - started
        started = time.perf_counter()
        many_warm = await asyncio.gather(*(timed(pool, k, "print(1)") for k in keys))
        warm_wall = time.perf_counter() - started
        one_cpu = await timed(pool, keys[0], CPU_SNIPPET)
        started = time.perf_counter()
        many_cpu = await asyncio.gather(*(timed(pool, k, CPU_SNIPPET) for k in keys))
        cpu_wall = time.perf_counter() - started
    finally:
        await pool.stop()

    fresh_m, warm_m = statistics.median(fresh), statistics.median(warm)
    added = warm_m - statistics.median(in_process)
    fresh_ok = "met" if fresh_m < 0.3 else "NOT met"
    warm_ok = "met" if added < 0.05 else "NOT met"
    rows = [
        ("bare python -c 'print(1)'", ms(bare), "(baseline)"),
        (
            "fresh session, print(1)",
            ms(fresh_m),
            f"{fresh_m / bare:.2f}x bare; < 300 ms {fresh_ok}",
        ),
        ("warm session, print(1)", ms(warm_m), f"adds {ms(added)}; < 50 ms {warm_ok}"),
        (f"{sessions} fresh sessions at once", ms(fresh_wall), f"slowest {ms(max(many_fresh))}"),
        (f"{sessions} warm sessions at once", ms(warm_wall), f"slowest {ms(max(many_warm))}"),
        ("CPU snippet, one session", ms(one_cpu), ""),
        (f"CPU snippet, {sessions} at once", ms(cpu_wall), f"slowest {ms(max(many_cpu))}"),
    ]
    print(f"sandboxed: {pool.sandboxed}  samples: {samples}")
    for label, figure, note in rows:
        print(f"{label:<32} {figure}   {note}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--sessions", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.sessions))
