"""The stack supervisor's own cost (`stack up` wall time minus the services' own time to
healthy) for 3 and 30 trivial services, and the supervisor's resident memory beside honcho's
for the same three processes."""

# .venv/bin/python bench/bench_stack.py [--runs 3] [--sizes 3,30]
#
# A trivial service is a bare Python process that binds its port and sleeps; its probe is tcp
# every 20 ms. "Own time to healthy" is measured without the stack: the same N commands
# started directly, in parallel, until every port accepts (so CPU contention among the
# services themselves is not charged to the stack). The supervisor's own per-service figure
# (spawn to first passing probe) is shown too. Targets: under 300 ms overhead for 3 services,
# linear or better growth; the supervisor and its orphan watchdog together under 40 MB
# resident (honcho, which runs one helper process per service, is the baseline).

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SERVICE = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(3600)\n"
)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def baseline(directory: Path, n: int) -> float:
    """Seconds until N trivial services started directly all accept connections."""
    script = directory / "trivial.py"
    script.write_text(SERVICE)
    ports = free_ports(n)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-S", str(script), str(p)]) for p in ports]
    try:
        pending = set(ports)
        while pending:
            for port in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    pending.discard(port)
                except OSError:
                    pass
            time.sleep(0.002)
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()


def stack_file(directory: Path, n: int) -> Path:
    script = directory / "trivial.py"
    script.write_text(SERVICE)
    lines = ["services:"]
    for i, port in enumerate(free_ports(n)):
        lines += [
            f"  s{i:02d}:",
            f"    command: {sys.executable} -S {script} ${{self.port}}",
            f"    port: {port}",
            "    probe: {tcp: true, interval: 0.02, timeout: 1}",
            "    stop_grace: 2",
        ]
    path = directory / "stack.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def stack(*args: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", *args, "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "STACK_STATE_DIR": str(path.parent / ".stack")},
    )


def one_run(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        own = baseline(Path(tmp), n)
        path = stack_file(Path(tmp), n)
        t0 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        up = stack("up", path=path)
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        if up.returncode != 0:
            raise SystemExit(f"stack up failed:\n{up.stdout}\n{up.stderr}")
        status = json.loads(stack("status", "--json", path=path).stdout)
        sup_own = max(s["ready_after"] for s in status["services"].values())
        sup = psutil.Process(status["supervisor_pid"])
        rss, uss = footprint(sup)
        times = sup.cpu_times()  # the detached supervisor is not a waited-for child
        sup_cpu = times.user + times.system
        stack("down", path=path)
    return {
        "wall": wall,
        "own": own,
        "sup_own": sup_own,
        "overhead": wall - own,
        "cpu": cli_cpu + sup_cpu,
        "rss": rss,
        "uss": uss,
    }


def footprint(root: psutil.Process) -> tuple[int, int]:
    """RSS and USS of a process manager and its own helpers, without the services it runs."""
    tree = [root, *root.children(recursive=True)]
    own = [p for p in tree if "trivial.py" not in " ".join(p.cmdline())]
    mems = [p.memory_full_info() for p in own]
    return sum(m.rss for m in mems), sum(m.uss for m in mems)


def honcho(n: int) -> tuple[int, int, int]:
    """honcho running the same N trivial services: (RSS, USS, processes) once all accept."""
    with tempfile.TemporaryDirectory(prefix="bench-honcho-") as tmp:
        script = Path(tmp) / "trivial.py"
        script.write_text(SERVICE)
        ports = free_ports(n)
        procfile = Path(tmp) / "Procfile"
        procfile.write_text(
            "".join(f"s{i}: {sys.executable} -S {script} {p}\n" for i, p in enumerate(ports))
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "honcho", "start", "-f", str(procfile)],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            pending = set(ports)
            while pending:
                for port in list(pending):
                    with contextlib.suppress(OSError):
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        pending.discard(port)
                time.sleep(0.01)
            time.sleep(0.5)  # settled, as the stack is when `stack up` returns
            root = psutil.Process(proc.pid)
            rss, uss = footprint(root)
            count = 1 + sum(
                "trivial.py" not in " ".join(p.cmdline()) for p in root.children(recursive=True)
            )
            return rss, uss, count
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="3,30")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"stack up overhead, median of {args.runs} runs ({os.cpu_count()} CPUs)")
    heads = (
        "services",
        "up wall",
        "own ready",
        "(in stack)",
        "overhead",
        "per svc",
        "CPU",
        "RSS",
        "USS",
    )
    widths = (8, 9, 10, 10, 9, 8, 8, 8, 8)
    print(" ".join(f"{h:>{w}}" for h, w in zip(heads, widths, strict=True)))
    results = {}
    for n in sizes:
        runs = [one_run(n) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[n] = med
        print(
            f"{n:>8} {med['wall'] * 1000:>7.0f}ms {med['own'] * 1000:>8.0f}ms "
            f"{med['sup_own'] * 1000:>8.0f}ms "
            f"{med['overhead'] * 1000:>7.0f}ms {med['overhead'] * 1000 / n:>6.1f}ms "
            f"{med['cpu'] * 1000:>6.0f}ms "
            f"{med['rss'] / 2**20:>6.1f}MB {med['uss'] / 2**20:>6.1f}MB"
        )
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        growth = (results[b]["overhead"] - results[a]["overhead"]) / (b - a)
        print(f"marginal overhead per added service: {growth * 1000:.1f} ms")
    print("CPU: user+system time of `stack up` and the supervisor (less sensitive to load);")
    print("RSS: resident set of the supervisor and its orphan watchdog, summed;")
    print("USS: the memory only they hold.")
    rss, uss, count = honcho(3)
    ours = results.get(3)
    print()
    print("process manager footprint for the same 3 services (services themselves excluded)")
    if ours:
        print(
            f"  stack supervisor + watchdog: {ours['rss'] / 2**20:6.1f} MB RSS "
            f"{ours['uss'] / 2**20:6.1f} MB USS  (2 processes; target < 40 MB RSS)"
        )
    print(
        f"  honcho start:                {rss / 2**20:6.1f} MB RSS {uss / 2**20:6.1f} MB USS"
        f"  ({count} processes)"
    )
    if ours:
        print(f"  ratio stack/honcho (RSS):    {ours['rss'] / rss:.2f}")


if __name__ == "__main__":
    main()
