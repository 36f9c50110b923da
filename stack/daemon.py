"""The supervisor process: takes the stack file's lock, starts the orphan watchdog, resolves the
plan and runs the Runner until the stack is down; reports to `stack up` over a pipe.

Detached, it is a fresh `python -m stack.daemon REPORT_FD` reading the checked stack file (as
JSON, see stack.spec) on stdin: a long-lived process that never loads the CLI's typer, rich,
pydantic or yaml."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from stack import procs
from stack.interpolate import InterpolationError
from stack.plan import ExternalDown, make_plan
from stack.ports import PortsExhausted, describe_holder
from stack.runner import Emit, LinePrinter, Runner
from stack.spec import StackConfig
from stack.state import StackPaths, live_status

__all__ = ["PipeEmit", "send", "start_detached", "supervise"]


async def _supervise_async(
    cfg: StackConfig, paths: StackPaths, emit: Emit, printer: LinePrinter | None, wd: procs.Watchdog
) -> int:
    try:
        plan = await make_plan(cfg)
    except (PortsExhausted, InterpolationError, ExternalDown, OSError) as exc:
        emit({"t": "error", "text": str(exc)})
        return 1
    notes = []
    for name, p in plan.ports.items():
        held = f" by {describe_holder(p.holder)}" if p.holder else ""
        if p.adopted:
            notes.append(
                f"{name}: adopted what already answers on port {p.port}: "
                + (describe_holder(p.holder) if p.holder else "something healthy")
            )
        elif p.moved:
            notes.append(f"{name}: port {p.asked} is taken{held}; using {p.port}")
    notes += [choice.note for choice in plan.choices.values()]
    for text in notes:
        emit({"t": "note", "text": text})
    runner = Runner(cfg, plan, paths, emit, printer, wd)
    runner.events += [n for n in notes if n not in runner.notes.values()]
    failure = await runner.run()
    return 1 if failure else 0


def supervise(
    cfg: StackConfig, paths: StackPaths, emit: Emit, printer: LinePrinter | None = None
) -> int:
    """Run the supervisor in this process until the stack is down; one per stack file."""
    lock = procs.try_lock(paths.lock)
    if lock is None:
        emit({"t": "running", "status": live_status(paths) or {}})
        return 0
    watchdog = procs.Watchdog()
    clean = False
    try:
        code = asyncio.run(_supervise_async(cfg, paths, emit, printer, watchdog))
        clean = True
        return code
    finally:
        watchdog.close(clean)  # after a crash of our own, the watchdog kills what is left
        procs.unlock(lock)


class PipeEmit:
    """Reports to the waiting `stack up` over a pipe until it has its answer, then stops."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self._last: dict[str, str] = {}

    def __call__(self, msg: dict[str, Any]) -> None:
        if msg["t"] != "state" or self._last.get(msg["service"]) != msg["state"]:
            _log(msg)
        if msg["t"] == "state":
            self._last[msg["service"]] = msg["state"]
        if self.fd is None:
            return
        try:
            os.write(self.fd, json.dumps(msg).encode() + b"\n")
        except OSError:
            msg = {"t": "ready"}  # the reader is gone; nothing more to say
        if msg["t"] in ("ready", "failed", "running", "error", "stopped"):
            os.close(self.fd)
            self.fd = None


def _log(msg: dict[str, Any]) -> None:
    """The detached supervisor's stdout is .stack/supervisor.log: say what happened there."""
    t = msg.get("t")
    if t == "state":
        text = f"{msg['service']}: {msg['state']}" + (
            f" ({msg['reason']})" if msg.get("reason") else ""
        )
    elif t == "note":
        text = msg["text"]
    elif t == "failed":
        text = f"{msg['service']} failed: {msg['why']}"
    elif t in ("ready", "running", "error", "stopped"):
        said = {"ready": "all services up", "running": "already running", "stopped": "stopped"}
        text = said.get(t, msg.get("text", ""))
    else:
        return
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)


def start_detached() -> tuple[subprocess.Popen[bytes], int]:
    """Start the supervisor in its own session; (its process, the read end of its reports).
    It loads its modules while `stack up` checks the stack file, then waits for `send`."""
    read_fd, write_fd = os.pipe()
    # its stderr is ours until it has the stack file (an import error shows here), then
    # .stack/supervisor.log
    argv, env = procs.own_module("stack.daemon", dict(os.environ))
    proc = subprocess.Popen(
        [*argv, str(write_fd)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        pass_fds=(write_fd,),
        start_new_session=True,  # Ctrl-C in the terminal is not for it
    )
    os.close(write_fd)
    return proc, read_fd


def send(proc: subprocess.Popen[bytes], cfg: StackConfig | None) -> None:
    """Hand the checked stack file to a supervisor from start_detached; None: it may go."""
    assert proc.stdin is not None
    with proc.stdin:
        if cfg is not None:
            proc.stdin.write(json.dumps(cfg.to_json()).encode())
    if cfg is None:
        proc.wait()


def main(argv: list[str]) -> int:
    data = sys.stdin.buffer.read()
    if not data:
        return 0  # the stack file did not pass its checks: nothing to supervise
    cfg = StackConfig.from_json(json.loads(data))
    paths = StackPaths.for_stack(cfg.path)
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(paths.supervisor_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for fd, to in ((0, devnull), (1, log), (2, log)):
        os.dup2(to, fd)
    os.close(devnull)
    os.close(log)
    return supervise(cfg, paths, PipeEmit(int(argv[0])))


if __name__ == "__main__":
    code = 1
    try:
        code = main(sys.argv[1:])
    except BaseException:
        import traceback

        traceback.print_exc()  # into .stack/supervisor.log
    finally:
        sys.stdout.flush()
        os._exit(code)
