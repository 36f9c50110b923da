"""Built-in tasks against scripted upstreams (httpx MockTransport), command tasks, log files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from stack.logs import LogWriter, follow, merged_tail, strip_stamp, tail
from stack.provision import ollama_pull, provision_assistants
from stack.spec import AssistantSpec
from stack.tasks import run_command

SPECS = [
    AssistantSpec(name="CEO", model="m", instructions="lead"),
    AssistantSpec(name="Wayne", model="m", instructions="trade"),
]


def fake_assistants_api(store: list[dict]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("x-api-key") != "k":
            return httpx.Response(401, json={"error": {"message": "bad key"}})
        if request.method == "GET":
            # two per page, to exercise the `after` cursor
            after = request.url.params.get("after")
            start = next((i + 1 for i, a in enumerate(store) if a["id"] == after), 0)
            page = store[start : start + 2]
            return httpx.Response(
                200,
                json={
                    "object": "list",
                    "data": page,
                    "last_id": page[-1]["id"] if page else None,
                    "has_more": start + 2 < len(store),
                },
            )
        body = json.loads(request.content)
        item = {"id": f"asst_{len(store)}", **body}
        store.append(item)
        return httpx.Response(200, json=item)

    return httpx.MockTransport(handler)


async def test_provisioning_is_idempotent_by_name() -> None:
    store = [
        {"id": "asst_a", "name": "x"},
        {"id": "asst_b", "name": "y"},
        {"id": "asst_c", "name": "CEO"},
    ]
    transport = fake_assistants_api(store)
    ok, detail = await provision_assistants("http://api", "k", SPECS, transport=transport)
    assert ok and detail == "assistants: 1 created, 1 already present"
    assert [a["name"] for a in store] == ["x", "y", "CEO", "Wayne"]
    ok, detail = await provision_assistants("http://api/v1", "k", SPECS, transport=transport)
    assert ok and detail == "assistants: 0 created, 2 already present"
    assert len(store) == 4


async def test_provisioning_reports_refusals() -> None:
    ok, detail = await provision_assistants(
        "http://api", "wrong", SPECS, transport=fake_assistants_api([])
    )
    assert not ok and "401" in detail


async def test_ollama_pull_reports_progress() -> None:
    lines = [
        {"status": "pulling manifest"},
        {"status": "downloading", "total": 100, "completed": 40},
        {"status": "downloading", "total": 100, "completed": 100},
        {"status": "success"},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/tags":
            return httpx.Response(200, json={"models": [{"name": "other:latest"}]})
        assert json.loads(request.content) == {"model": "qwen2.5-coder:7b", "stream": True}
        return httpx.Response(200, content="\n".join(json.dumps(x) for x in lines).encode())

    seen: list[tuple[str, int, int]] = []
    ok, detail = await ollama_pull(
        "127.0.0.1:11434",
        "qwen2.5-coder:7b",
        lambda *a: seen.append(a),
        httpx.MockTransport(handler),
    )
    assert ok and detail == "pulled qwen2.5-coder:7b"
    assert ("downloading", 40, 100) in seen


async def test_ollama_pull_skips_a_present_model() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/tags"
        return httpx.Response(200, json={"models": [{"name": "qwen2.5-coder:7b"}]})

    ok, detail = await ollama_pull(
        "http://o", "qwen2.5-coder:7b", print, httpx.MockTransport(handler)
    )
    assert ok and "already present" in detail


async def test_command_task_output_and_timeout(tmp_path: Path) -> None:
    lines: list[str] = []
    ok, detail = await run_command(
        f"{sys.executable} -c \"print('migrated'); raise SystemExit(3)\"",
        str(tmp_path),
        {},
        10,
        lines.append,
    )
    assert not ok and "exited with code 3" in detail and lines == ["migrated"]
    ok, detail = await run_command(
        f'{sys.executable} -c "import time; time.sleep(30)"', str(tmp_path), {}, 0.3, lines.append
    )
    assert not ok and "timed out after 0.3s" in detail


def test_log_rotation_and_tail(tmp_path: Path) -> None:
    w = LogWriter(tmp_path / "a.log", max_bytes=200, backups=2)
    for i in range(40):
        w.write(f"line {i}")
    w.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["a.log", "a.log.1", "a.log.2"]
    last = [strip_stamp(x) for x in tail(tmp_path / "a.log", 8)]
    assert last == [f"line {i}" for i in range(32, 40)]
    b = LogWriter(tmp_path / "b.log")
    b.write("from b")
    b.close()
    merged = merged_tail({"a": tmp_path / "a.log", "b": tmp_path / "b.log"}, 1)
    assert [name for name, _ in merged] == ["a", "b"]


def test_follow_sees_new_lines_across_a_rotation(tmp_path: Path) -> None:
    import threading
    import time

    w = LogWriter(tmp_path / "a.log", max_bytes=120, backups=2)
    w.write("before")

    def writer() -> None:
        for i in range(6):
            time.sleep(0.05)
            w.write(f"new line {i}")  # rotates every few lines

    t = threading.Thread(target=writer)
    t.start()
    seen = [strip_stamp(line) for _, line in follow({"a": tmp_path / "a.log"}, stop=1.0, poll=0.02)]
    t.join()
    w.close()
    assert "before" not in seen  # follow starts at the end
    assert [x for x in seen if x.startswith("new line")][-1] == "new line 5"


async def test_command_task_takes_its_leftovers_with_it(tmp_path: Path) -> None:
    import time

    from stack.procs import group_alive

    script = (
        "import subprocess, sys; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('migrated')"
    )
    groups: list[int] = []
    exited: list[int] = []
    t0 = time.monotonic()
    ok, _ = await run_command(
        f'{sys.executable} -c "{script}"',
        str(tmp_path),
        {},
        20,
        lambda line: None,
        groups.append,
        exited.append,
    )
    # the grandchild holds the output pipe open: without killing the group this would hang
    assert ok and time.monotonic() - t0 < 5
    assert groups == exited
    deadline = time.monotonic() + 3  # SIGKILL is sent; give the kernel a moment
    while group_alive(groups[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_alive(groups[0])


async def test_command_task_survives_a_line_past_the_stream_limit(tmp_path: Path) -> None:
    lines: list[str] = []
    ok, detail = await run_command(
        f"{sys.executable} -c \"print('x' * 100000); print('migrated')\"",
        str(tmp_path),
        {},
        10,
        lines.append,
    )
    assert ok, detail
    # the overlong line comes in pieces that are not split on newlines: what follows it may
    # share a piece with its end
    assert lines[-1].endswith("migrated")
