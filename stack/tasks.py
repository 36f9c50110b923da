"""One-shot tasks run before a service starts or after it is healthy: commands (e.g.
`alembic upgrade head`) and the built-in actions of stack/provision.py."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import Callable

from stack import procs
from stack.spec import Task

__all__ = ["run_command", "run_task"]

Line = Callable[[str], None]
Progress = Callable[[str, int, int], None]


async def run_command(
    cmd: str,
    cwd: str,
    env: dict[str, str],
    timeout: float,
    on_line: Line,
    on_spawn: Callable[[int], None] = lambda pid: None,
    on_exit: Callable[[int], None] = lambda pid: None,
) -> tuple[bool, str]:
    """Run a command in its own process group; its output goes to on_line. on_spawn/on_exit
    bracket the life of its group (the supervisor tells the orphan watchdog)."""
    try:
        proc = await procs.spawn(shlex.split(cmd), cwd, env)
    except OSError as exc:
        return False, f"cannot run `{cmd}`: {exc.strerror or exc}"
    on_spawn(proc.pid)
    last = ""

    async def pump() -> None:
        nonlocal last
        async for raw in procs.output_lines(proc.stdout):
            line = raw.rstrip()
            last = line or last
            on_line(line)

    pumping = asyncio.ensure_future(pump())
    try:
        code = await asyncio.wait_for(asyncio.shield(proc.exited), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        procs.kill_group(proc.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(proc.exited), 5.0)
        pumping.cancel()
        on_exit(proc.pid)
        if isinstance(exc, asyncio.CancelledError):
            raise
        return False, f"`{cmd}` timed out after {timeout:g}s"
    # what the task left in its group goes with it, which also ends its output
    procs.kill_group(proc.pid)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(pumping), 2.0)
    pumping.cancel()
    on_exit(proc.pid)
    return code == 0, f"`{cmd}` exited with code {code}" + (f": {last}" if last and code else "")


async def run_task(
    task: Task,
    cwd: str,
    env: dict[str, str],
    on_line: Line,
    on_progress: Progress,
    on_spawn: Callable[[int], None] = lambda pid: None,
    on_exit: Callable[[int], None] = lambda pid: None,
) -> tuple[bool, str]:
    """Dispatch one task; (ok, detail)."""
    if task.run is not None:
        merged = {**env, **task.env}
        return await run_command(
            task.run, task.cwd or cwd, merged, task.timeout, on_line, on_spawn, on_exit
        )
    from stack import provision  # httpx is only needed by the built-in tasks

    try:
        if task.ollama_pull is not None:
            coro = provision.ollama_pull(task.ollama_pull.host, task.ollama_pull.model, on_progress)
        else:
            assert task.provision is not None
            p = task.provision
            coro = provision.provision_assistants(p.url, p.api_key, p.assistants, on_line)
        return await asyncio.wait_for(coro, task.timeout)
    except TimeoutError:
        return False, f"{task.label} timed out after {task.timeout:g}s"
