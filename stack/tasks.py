"""One-shot tasks run before a service starts or after it is healthy: commands (e.g.
`alembic upgrade head`) and the built-in actions of stack/provision.py."""

# The built-in actions run as `python -m stack.provision` with the task in STACK_TASK: httpx
# and its kind stay out of the long-lived supervisor. They report on stdout; lines starting
# with MARK carry progress and the result as JSON.

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
from collections.abc import Callable

from stack import procs
from stack.spec import Task, to_plain

__all__ = ["MARK", "run_command", "run_task"]

MARK = "\x1e"

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
    result: list[object] = []

    def line(text: str) -> None:
        if not text.startswith(MARK):
            on_line(text)
            return
        kind, _, data = text[1:].partition(" ")
        if kind == "progress":
            status, done, total = json.loads(data)
            on_progress(status, done, total)
        elif kind == "result":
            result[:] = json.loads(data)

    argv, merged = procs.own_module("stack.provision", env)
    merged |= {"STACK_TASK": json.dumps(to_plain(task)), "PYTHONUNBUFFERED": "1"}
    cmd = shlex.join(argv)
    ok, detail = await run_command(cmd, cwd, merged, task.timeout, line, on_spawn, on_exit)
    if not ok and detail.endswith(f"timed out after {task.timeout:g}s"):
        return False, f"{task.label} timed out after {task.timeout:g}s"
    if not result:  # it died before saying (a traceback is in the log)
        return False, f"{task.label}: {detail}"
    return bool(result[0]), str(result[1])
