"""The headline benchmark: a mixed workload shaped like real use of the assistants service.

    .venv/bin/python bench/bench_mixed.py [--seconds 10] [--rounds 2] [--clients 1,16]
        [--databases sqlite,postgresql] [--against REV] [--tree NAME:PATH]
        [--variant NAME:ENV=VALUE,...]

Each client repeats one turn: create a thread with a message, stream a run on the scripted
upstream, list the messages, add one, create a second run and poll it until it ends, list
again. Prints turns/s and every step's p50/p99 at each client count and database, for each
variant of the service, each measured in the same run, in alternating rounds, beside the
first variant (the ordinary path: this tree with its default settings), with the service's
CPU time per turn (which the machine's other load changes less than turns/s):
  --against REV   the service as it is at git revision REV (extracted with ``git archive``)
  --tree          the service in another source tree, ``--tree NAME:PATH``
  --variant       this tree with settings changed, e.g. ``--variant mock:USE_MOCK_INFERENCE=1``
PostgreSQL comes from TEST_DATABASE_URL (skipped without it); each variant gets a fresh
database. The two-route micro-benchmark is ``bench_assistants.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.openai_upstream import run_openai_upstream  # noqa: E402
from tests.support.databases import fresh_postgres  # noqa: E402
from tests.support.processes import ServiceProcess, free_port  # noqa: E402

HEADERS = {"Authorization": "Bearer test-key"}
STEPS = ("create_thread", "stream_run", "list", "add_message", "poll_run", "list_again")
TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete", "requires_action"}
# A short answer at a local model's pace: the service's own work, not the model's, is what
# the workload should weigh.
SCRIPT = [{"tokens": ["Sure", ",", " here", " is", " the", " answer", "."] * 3,
           "tokens_per_s": 2000, "repeat": True}]  # fmt: skip


@dataclass
class Variant:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    tree: Path = ROOT  # the source tree the service runs from


@dataclass
class Sample:
    turns: int = 0
    errors: list[str] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the service process's, user + system


async def turn(client: httpx.AsyncClient, assistant_id: str, poll_s: float, sample: Sample) -> None:
    marks: dict[str, float] = {}

    async def timed(step: str, coro: Any) -> Any:
        started = time.perf_counter()
        result = await coro
        marks[step] = time.perf_counter() - started
        return result

    def ok(response: httpx.Response) -> dict[str, Any]:
        if response.status_code != 200:
            raise RuntimeError(
                f"{response.request.url.path}: {response.status_code} {response.text}"
            )
        return response.json()

    async def create_thread() -> str:
        body = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
        return ok(await client.post("/threads", json=body))["id"]

    async def stream_run(thread_id: str) -> None:
        body = {"assistant_id": assistant_id, "stream": True}
        last = None
        async with client.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"stream: {response.status_code} {await response.aread()!r}")
            async for line in response.aiter_lines():
                if line.startswith("event: ") and line != "event: done":
                    last = line[7:]
        if last != "thread.run.completed":
            raise RuntimeError(f"streamed run ended with {last}")

    async def poll_run(thread_id: str) -> None:
        run = ok(
            await client.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id})
        )
        while run["status"] not in TERMINAL:
            await asyncio.sleep(poll_s)
            run = ok(await client.get(f"/threads/{thread_id}/runs/{run['id']}"))
        if run["status"] != "completed":
            raise RuntimeError(f"polled run ended {run['status']}: {run.get('last_error')}")

    thread_id = await timed("create_thread", create_thread())
    await timed("stream_run", stream_run(thread_id))
    await timed("list", client.get(f"/threads/{thread_id}/messages"))
    message = {"role": "user", "content": "And of Italy?"}
    ok(await timed("add_message", client.post(f"/threads/{thread_id}/messages", json=message)))
    await timed("poll_run", poll_run(thread_id))
    listed = ok(await timed("list_again", client.get(f"/threads/{thread_id}/messages")))
    if len(listed["data"]) != 4:
        raise RuntimeError(f"expected 4 messages, listed {len(listed['data'])}")
    sample.turns += 1
    for step, seconds in marks.items():
        sample.steps[step].append(seconds)


async def load(
    base_url: str, assistant_id: str, clients: int, seconds: float, poll_s: float
) -> Sample:
    sample = Sample()
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)
    async with httpx.AsyncClient(
        base_url=f"{base_url}/v1", headers=HEADERS, timeout=60, limits=limits
    ) as client:
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                try:
                    await turn(client, assistant_id, poll_s, sample)
                except Exception as exc:  # counted and shown: a failing variant is no faster
                    sample.errors.append(f"{type(exc).__name__}: {exc}"[:300])

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        sample.seconds = time.perf_counter() - started
    return sample


def merge(samples: list[Sample]) -> Sample:
    total = Sample()
    for s in samples:
        total.turns += s.turns
        total.errors += s.errors
        total.seconds += s.seconds
        total.cpu_seconds += s.cpu_seconds
        for step in STEPS:
            total.steps[step] += s.steps[step]
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(sample: Sample) -> dict[str, Any]:
    steps = {
        step: {
            "p50_ms": round(statistics.median(v) * 1000, 1),
            "p99_ms": round(percentile(v, 0.99) * 1000, 1),
        }
        for step, v in sample.steps.items()
        if v
    }
    return {
        "turns_per_s": round(sample.turns / sample.seconds, 2) if sample.seconds else 0.0,
        "turns": sample.turns,
        # The service's CPU per turn: what it costs, whatever else loads the machine.
        "cpu_ms_per_turn": round(sample.cpu_seconds * 1000 / sample.turns, 1)
        if sample.turns
        else None,
        "errors": len(sample.errors),
        "first_errors": sample.errors[:2],
        "steps": steps,
    }


def extract(rev: str, into: Path) -> Path:
    """The project's files at ``rev``, to run that version of the service beside this one."""
    tree = into / f"tree-{rev.replace('/', '_')}"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def start(variant: Variant, database_url: str, log: Path, upstream: str) -> ServiceProcess:
    """Migrate, then start the variant's service from its own tree (``python -m`` puts the
    working directory first on the path, ahead of the installed project)."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=variant.tree,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    env |= {
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEY": "test-key",
        "SOVEREIGN_PLAYGROUND_URL": upstream,
        "LOG_LEVEL": "WARNING",
        **variant.env,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.assistants"],
            cwd=variant.tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = ServiceProcess(proc=proc, port=port, log_path=log, env=env)
    service.wait_started()
    return service


def run_database(
    database: str, variants: list[Variant], args: argparse.Namespace, tmp: Path, upstream: str
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        services: dict[str, tuple[ServiceProcess, str]] = {}
        for variant in variants:
            if database == "sqlite":
                url = f"sqlite:///{tmp / f'{database}-{variant.name}.db'}"
            else:
                url = stack.enter_context(fresh_postgres())
            service = start(variant, url, tmp / f"{database}-{variant.name}.log", upstream)
            stack.callback(service.stop)
            api = httpx.Client(base_url=f"{service.base_url}/v1", headers=HEADERS, timeout=30)
            assistant = api.post("/assistants", json={"model": "fake-model"}).json()["id"]
            api.close()
            services[variant.name] = (service, assistant)
        for clients in args.clients:
            rounds: dict[str, list[Sample]] = {v.name: [] for v in variants}
            for round_no in range(args.rounds):
                # Alternate the order, so that drift in the machine's load hits both sides.
                order = variants if round_no % 2 == 0 else list(reversed(variants))
                for variant in order:
                    service, assistant = services[variant.name]
                    asyncio.run(load(service.base_url, assistant, clients, 1.0, args.poll))  # warm
                    process = psutil.Process(service.proc.pid)
                    cpu = sum(process.cpu_times()[:2])
                    sample = asyncio.run(
                        load(service.base_url, assistant, clients, args.seconds, args.poll)
                    )
                    sample.cpu_seconds = sum(process.cpu_times()[:2]) - cpu
                    rounds[variant.name].append(sample)
            results[str(clients)] = {name: summary(merge(s)) for name, s in rounds.items()}
    return results


def report(results: dict[str, Any], variants: list[Variant]) -> None:
    base = variants[0].name
    for database, by_clients in results.items():
        for clients, by_variant in by_clients.items():
            print(f"\n{database}, {clients} client(s)")
            header = f"  {'variant':<18}{'turns/s':>9}{'ratio':>7}{'CPU ms/turn':>13}{'err':>5}"
            header += "".join(f"{s:>20}" for s in STEPS)
            print(header + "   (p50/p99 ms)")
            for name, figures in by_variant.items():
                ratio = figures["turns_per_s"] / (by_variant[base]["turns_per_s"] or 1)
                line = f"  {name:<18}{figures['turns_per_s']:>9.2f}{ratio:>7.2f}"
                line += f"{figures['cpu_ms_per_turn'] or 0:>13.1f}"
                line += f"{figures['errors']:>5}"
                for step in STEPS:
                    s = figures["steps"].get(step)
                    cell = f"{s['p50_ms']}/{s['p99_ms']}" if s else "-"
                    line += f"{cell:>20}"
                print(line)
                for error in figures["first_errors"]:
                    print(f"    error: {error}")


def parse_variant(spec: str) -> Variant:
    name, _, settings = spec.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    return Variant(name=name, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per round and variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", default="1,16")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between run polls")
    parser.add_argument("--against", action="append", default=[], metavar="REV")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME:PATH")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:ENV=VALUE,...")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    databases = args.databases.split(",")
    if "postgresql" in databases and not os.environ.get("TEST_DATABASE_URL"):
        print("TEST_DATABASE_URL is not set: PostgreSQL skipped", file=sys.stderr)
        databases.remove("postgresql")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        variants = [Variant("this-tree")]
        variants += [Variant(f"at-{rev}", tree=extract(rev, tmp)) for rev in args.against]
        variants += [
            Variant(name, tree=Path(path).resolve())
            for name, _, path in (spec.partition(":") for spec in args.tree)
        ]
        variants += [parse_variant(spec) for spec in args.variant]
        results: dict[str, Any] = {}
        with run_openai_upstream(SCRIPT) as upstream:
            for database in databases:
                results[database] = run_database(database, variants, args, tmp, upstream.url)
    report(results, variants)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
