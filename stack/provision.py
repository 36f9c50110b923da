"""Built-in post-healthy tasks: pulling an Ollama model (with progress) and provisioning named
assistants through the assistants API, idempotent by name. `python -m stack.provision` runs
the task in STACK_TASK (see stack.tasks)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from stack.spec import AssistantSpec, Task, to_plain

__all__ = ["ollama_pull", "provision_assistants"]


def _base(host: str) -> str:
    # OLLAMA_HOST is usually "127.0.0.1:11434", without a scheme
    return (host if "://" in host else f"http://{host}").rstrip("/")


async def ollama_pull(
    host: str,
    model: str,
    on_progress: Callable[[str, int, int], None],
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[bool, str]:
    """Pull `model` unless Ollama already has it; progress is (status, completed, total)."""
    timeout = httpx.Timeout(10.0, read=None)
    async with httpx.AsyncClient(base_url=_base(host), timeout=timeout, transport=transport) as c:
        try:
            tags = (await c.get("/api/tags")).json().get("models", [])
            have = {m.get("name") for m in tags} | {m.get("model") for m in tags}
            if model in have or f"{model}:latest" in have:
                return True, f"model {model} already present"
            async with c.stream("POST", "/api/pull", json={"model": model, "stream": True}) as r:
                if r.status_code != 200:
                    return False, f"ollama pull {model}: HTTP {r.status_code}"
                status = ""
                async for line in r.aiter_lines():
                    if not line.strip():
                        continue
                    msg = json.loads(line)
                    if "error" in msg:
                        return False, f"ollama pull {model}: {msg['error']}"
                    status = msg.get("status", status)
                    on_progress(status, int(msg.get("completed", 0)), int(msg.get("total", 0)))
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"ollama pull {model}: {exc}"
    ok = status == "success"
    return ok, f"pulled {model}" if ok else f"ollama pull {model} ended with {status!r}"


async def _list_assistants(c: httpx.AsyncClient) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100, "order": "asc"}
    while True:
        r = await c.get("/assistants", params=params)
        r.raise_for_status()
        page = r.json()
        out += page.get("data", [])
        if not page.get("has_more") or not page.get("last_id"):
            return out
        params["after"] = page["last_id"]


async def provision_assistants(
    url: str,
    api_key: str,
    specs: Sequence[AssistantSpec],
    on_line: Callable[[str], None] = lambda line: None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[bool, str]:
    """Create the assistants that do not exist yet (matched by name); never duplicates."""
    base = url.rstrip("/")
    base = base if base.endswith("/v1") else base + "/v1"
    headers = {"X-API-Key": api_key, "OpenAI-Beta": "assistants=v2"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30.0, transport=transport
    ) as c:
        try:
            existing = {a.get("name") for a in await _list_assistants(c)}
            created = []
            for spec in specs:
                if spec.name in existing:
                    continue
                body = {k: v for k, v in to_plain(spec).items() if v is not None}
                r = await c.post("/assistants", json=body)
                if r.status_code >= 300:
                    return (
                        False,
                        f"creating assistant {spec.name!r}: HTTP {r.status_code} {r.text[:200]}",
                    )
                created.append(spec.name)
                existing.add(spec.name)
                on_line(f"provisioned assistant {spec.name!r} ({r.json().get('id')})")
        except httpx.HTTPError as exc:
            return False, f"provisioning assistants at {base}: {exc}"
    kept = len(specs) - len(created)
    return True, f"assistants: {len(created)} created, {kept} already present"


def main() -> int:
    from stack.tasks import MARK

    task = Task.from_dict(json.loads(os.environ["STACK_TASK"]))

    def progress(status: str, done: int, total: int) -> None:
        print(f"{MARK}progress {json.dumps([status, done, total])}", flush=True)

    if task.ollama_pull is not None:
        coro = ollama_pull(task.ollama_pull.host, task.ollama_pull.model, progress)
    else:
        assert task.provision is not None
        p = task.provision
        coro = provision_assistants(p.url, p.api_key, p.assistants, lambda x: print(x, flush=True))
    ok, detail = asyncio.run(coro)
    print(f"{MARK}result {json.dumps([ok, detail])}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
