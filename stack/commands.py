"""The `stack` commands as plain functions: each returns an exit code, raises StackError for a
one-line domain error, and prints through rich."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from stack import procs
from stack.errors import StackError
from stack.logs import follow, merged_tail
from stack.render import UpRenderer, line_printer, port_text, status_table
from stack.state import READY, StackPaths, live_status, read_state, write_state

SETTLED = READY | {"failed", "skipped", "exited"}

# `up` and `config` import the config schema, the planner and the runner when they need
# them: `stack status` and friends should not pay for pydantic and asyncio at start-up.

__all__ = ["StackError", "config", "down", "logs", "restart", "status", "up"]

# a table for a pipe or a log file should not be squeezed to 80 columns
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


# -- up ----------------------------------------------------------------------------------------
def up(file: Path, foreground: bool = False) -> int:
    from stack.config import load
    from stack.daemon import send, start_detached, supervise

    render = UpRenderer(console, live=foreground)
    if foreground:
        cfg = load(file)
        paths = StackPaths.for_stack(cfg.path)
        paths.ensure()
        code = supervise(cfg, paths, render, line_printer())
        return _conclude(render, paths, code)
    # the supervisor starts (a fresh, lean process) while the stack file is checked here
    proc, fd = start_detached()
    try:
        cfg = load(file)
        paths = StackPaths.for_stack(cfg.path)
        paths.ensure()
    except BaseException:
        os.close(fd)
        send(proc, None)
        raise
    send(proc, cfg)
    try:
        with os.fdopen(fd, "rb") as reports:
            for raw in reports:
                render(json.loads(raw))
                if render.result is not None and render.result["t"] != "failed":
                    break
    except KeyboardInterrupt:
        # Ctrl-C while waiting: stop what this `up` started rather than leave it half up
        console.print("interrupted: stopping the stack")
        proc.terminate()
        proc.wait()
        return 130
    if render.result is None or render.result["t"] != "ready":
        proc.wait()  # it has finished (or is about to): do not leave a zombie
    return _conclude(render, paths, None)


def _conclude(render: UpRenderer, paths: StackPaths, code: int | None) -> int:
    res = render.result
    if res is None:
        if code is not None:
            return code
        raise StackError(f"the supervisor exited without a report; see {paths.supervisor_log}")
    if res["t"] == "failed":
        render.failure(res)
        return 1
    if res["t"] == "error":
        raise StackError(res["text"])
    if res["t"] == "stopped":
        if code is not None:  # --foreground: Ctrl-C is how it ends
            return code
        raise StackError("stopped before every service was up (stack down?)")
    if res["t"] == "running":
        return _wait_for_running(paths)
    if code is None:
        console.print(status_table(live_status(paths) or res["status"]))
    return code or 0


def _wait_for_running(paths: StackPaths, timeout: float = 900.0) -> int:
    """Another `stack up` holds the lock: wait until every service is up (or it failed)."""
    said = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = live_status(paths) or {}
        alive = status.get("supervisor_alive")
        if alive and not said:
            pid = status.get("supervisor_pid")
            console.print(f"stack already running (supervisor pid {pid})")
            said = True
        states = [s.get("state") for s in status.get("services", {}).values()]
        if alive and status.get("phase") == "up":
            if all(s in READY for s in states):
                console.print(status_table(status))
                return 0
            if "failed" in states:
                console.print(status_table(status))
                raise StackError("the stack is running, but not every service is up")
        lock = procs.try_lock(paths.lock)
        if lock is not None:  # the other `up` has finished without the stack running
            procs.unlock(lock)
            status = live_status(paths) or {}
            if not status.get("supervisor_alive"):
                raise StackError(
                    f"the other `stack up` ended with the stack {status.get('phase', 'down')};"
                    " see `stack status`"
                )
        time.sleep(0.1)
    raise StackError(f"the stack was not up within {timeout:g}s; see `stack status`")


# -- down, restart, status ---------------------------------------------------------------------
def _running(file: Path) -> tuple[StackPaths, dict[str, Any] | None]:
    paths = StackPaths.for_stack(file)
    status = live_status(paths)
    return paths, status if status and status.get("supervisor_alive") else None


def down(file: Path, timeout: float = 120.0) -> int:
    paths, status = _running(file)
    if status is None:
        _sweep(paths)
        console.print("no stack running")
        return 0
    pid = int(status["supervisor_pid"])
    try:
        procs.control_request(paths.control, {"cmd": "down"})
    except OSError:
        procs.terminate(pid)  # the same request by the other door
    deadline = time.monotonic() + timeout
    while procs.pid_alive(pid):
        if time.monotonic() > deadline:
            raise StackError(f"the supervisor (pid {pid}) did not stop within {timeout:g}s")
        time.sleep(0.05)
    final = live_status(paths) or {}
    console.print(f"stopped {len(final.get('services', {}))} services")
    return 0


def _sweep(paths: StackPaths) -> None:
    """After a supervisor died: make sure nothing recorded in the state file still runs."""
    data = read_state(paths.state)
    if not data or data.get("phase") in ("stopped", "failed"):
        return
    for svc in data.get("services", {}).values():
        pid = svc.get("pid")
        if pid and procs.group_alive(pid):
            procs.kill_group(pid)
        if svc.get("state") not in ("failed", "skipped"):
            svc["state"], svc["pid"] = "stopped", None
    data["phase"] = "stopped"
    write_state(paths.state, data)  # the truth now: nothing of this stack runs


def restart(file: Path, service: str, deps: bool = True, timeout: float = 600.0) -> int:
    paths, status = _running(file)
    if status is None:
        raise StackError("no stack running")
    if service not in status["services"]:
        raise StackError(f"unknown service {service!r} (have: {', '.join(status['services'])})")
    asked = time.time()
    request = {"cmd": "restart", "service": service, "deps": deps}
    reply = procs.control_request(paths.control, request)
    if not reply.get("ok"):
        raise StackError(reply.get("error", "restart refused"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = live_status(paths) or {}
        svcs = now.get("services", {})
        svc = svcs.get(service, {})
        if svc.get("state") == "failed":
            raise StackError(f"{service} failed: {svc.get('reason')}")
        if not now.get("supervisor_alive"):
            raise StackError(f"the supervisor stopped; see {paths.supervisor_log}")
        back = (svc.get("ready_at") or 0) > asked and svc.get("state") in READY
        # and what follows it is back too (a service failed for its own reasons does not count)
        if back and all(s.get("state") in SETTLED for s in svcs.values()):
            how = f"pid {svc['pid']}" if svc.get("pid") else svc.get("state")
            variant = f" as {svc['variant']}" if svc.get("variant") else ""
            console.print(f"{service} restarted{variant} ({how})")
            for note in now.get("notes", [])[len(status.get("notes", [])) :]:
                console.print(f"• {note}")
            return 0
        time.sleep(0.1)
    raise StackError(f"{service} not back within {timeout:g}s")


def status(file: Path, as_json: bool = False) -> int:
    paths = StackPaths.for_stack(file)
    data = live_status(paths) or {"phase": "not running", "services": {}}
    if as_json:
        print(json.dumps(data, indent=2))
    elif not data["services"]:
        console.print("no stack has run here")
    else:
        for note in data.get("notes", []):
            console.print(f"• {note}")
        console.print(status_table(data))
    return 0


# -- logs, config ------------------------------------------------------------------------------
def logs(file: Path, service: str | None, lines: int, follow_: bool) -> int:
    paths = StackPaths.for_stack(file)
    names = sorted(p.name.removesuffix(".log") for p in paths.logs.glob("*.log"))
    if service is not None:
        if service not in names:
            raise StackError(f"no logs for {service!r} (have: {', '.join(names) or 'none'})")
        names = [service]
    files = {n: paths.log(n) for n in names}
    width = max((len(n) for n in names), default=0)
    prefix = (lambda n: f"{n.ljust(width)} | ") if len(names) > 1 else (lambda n: "")
    for name, line in merged_tail(files, lines)[-lines:]:
        print(prefix(name) + line)
    if follow_:
        with contextlib.suppress(KeyboardInterrupt):
            for name, line in follow(files):
                print(prefix(name) + line, flush=True)
    return 0


def config(file: Path) -> int:
    import asyncio

    import yaml

    from stack.config import load
    from stack.interpolate import InterpolationError
    from stack.plan import ExternalDown, make_plan
    from stack.ports import PortsExhausted
    from stack.spec import to_plain

    cfg = load(file)
    try:
        plan = asyncio.run(make_plan(cfg))
    except (PortsExhausted, InterpolationError, ExternalDown) as exc:
        raise StackError(str(exc)) from None
    plan.close_sockets()
    for choice in plan.choices.values():
        print(f"# {choice.note}")
    for name, p in plan.ports.items():
        if p.adopted or p.moved:
            info = {"port": p.port, "asked_port": p.asked, "adopted": p.adopted, "moved": p.moved}
            print(f"# {name}: {port_text(info)}")
    out = {
        n: {
            k: v
            for k, v in to_plain(s, drop_defaults=True).items()
            if k not in ("name", "when", "note")
        }
        for n, s in plan.services.items()
    }
    print(yaml.safe_dump({"services": out}, sort_keys=False, allow_unicode=True), end="")
    return 0
