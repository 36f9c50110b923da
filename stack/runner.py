"""The supervisor at run time: the asyncio side of `Effects` (real processes, probes, tasks,
timers), the one consumer loop, the control socket and the state file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from stack import procs
from stack.events import (
    Event,
    Exited,
    PortTaken,
    ProbeDone,
    Replanned,
    RestartRequested,
    Spawned,
    SpawnFailed,
    StopRequested,
    TaskDone,
)
from stack.health import ProbeTarget, check
from stack.interpolate import InterpolationError
from stack.logs import LogWriter, tail
from stack.plan import Plan, preferred_answers, replan
from stack.ports import PortsExhausted, describe_holder, port_is_free
from stack.spec import StackConfig
from stack.state import StackPaths, write_state
from stack.supervisor import Failure, Supervisor, failure_hint
from stack.tasks import run_task

__all__ = ["Runner"]

Emit = Callable[[dict[str, Any]], None]
LinePrinter = Callable[[str, str], None]
LOG_TAIL = 20
UP_MARK = "[stack] ---- stack up ----"


class Runner:
    """Implements `Effects` with asyncio; `run()` drives the Supervisor until it is done."""

    def __init__(
        self,
        cfg: StackConfig,
        plan: Plan,
        paths: StackPaths,
        emit: Emit,
        printer: LinePrinter | None = None,
        watchdog: procs.Watchdog | None = None,
    ) -> None:
        self.cfg, self.plan, self.paths, self.emit = cfg, plan, paths, emit
        self.printer, self.watchdog = printer, watchdog
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.sup = Supervisor(plan.services, self, self.loop.time, plan.adopted)
        self.procs: dict[str, procs.Child] = {}
        self.jobs: dict[str, set[asyncio.Task[Any]]] = defaultdict(set)
        self.background: set[asyncio.Task[Any]] = set()
        self.logs = {n: LogWriter(paths.log(n)) for n in plan.services}
        for log in self.logs.values():
            log.write(UP_MARK)
        self.started_wall = time.time()
        self.notes = {n: c.note for n, c in plan.choices.items()}
        self.events: list[str] = []  # failovers and moves since `up`, said in `stack status`
        self._flush_pending = False
        self._interrupts = 0
        # a service's probe target is fixed until it is replanned: not built on every probe
        self.targets: dict[str, ProbeTarget] = {}
        for n in plan.services:
            self._target(n)

    def _target(self, name: str) -> None:
        s = self.plan.services[name]
        if s.probe is not None:
            env = self._env(name)
            self.targets[name] = ProbeTarget(s.probe, s.host, s.port, s.url, self._cwd(name), env)

    # -- Effects -------------------------------------------------------------------------------
    def spawn(self, name: str, gen: int) -> None:
        self._background(self._spawn(name, gen))

    def signal(self, name: str, sig: str) -> None:
        proc = self.procs.get(name)
        if proc is not None:
            procs.signal_group(proc.pid, procs.signal_number(sig))

    def probe(self, name: str, gen: int) -> None:
        async def job() -> None:
            ok, detail = await check(self.targets[name])
            self.queue.put_nowait(ProbeDone(name, gen, ok, detail))

        self._job(name, job())

    def run_task(self, name: str, gen: int, phase: str, index: int) -> None:
        svc = self.plan.services[name]
        task = (svc.pre_start if phase == "pre_start" else svc.post_healthy)[index]

        def on_line(line: str) -> None:
            self._line(name, f"[{task.label}] {line}")

        def on_progress(status: str, done: int, total: int) -> None:
            self.emit(
                {
                    "t": "progress",
                    "service": name,
                    "status": status,
                    "completed": done,
                    "total": total,
                }
            )

        async def job() -> None:
            self._line(name, f"[{task.label}] starting")
            ok, detail = await run_task(
                task,
                self._cwd(name),
                self._env(name),
                on_line,
                on_progress,
                self._track,
                self._untrack,
            )
            self._line(name, f"[{task.label}] {'done' if ok else 'failed'}: {detail}")
            self.queue.put_nowait(TaskDone(name, gen, phase, index, ok, detail))  # type: ignore[arg-type]

        self._job(name, job())

    def replan(self, name: str, gen: int, mode: str, deps: bool) -> None:
        self._background(self._replan(name, gen, mode, deps))

    async def _replan(self, name: str, gen: int, mode: str, deps: bool) -> None:
        try:
            r = await replan(self.cfg, self.plan, name, mode)
        except (PortsExhausted, InterpolationError, OSError) as exc:
            self._event(f"{name}: cannot {mode}: {exc}")
            self.queue.put_nowait(Replanned(name, gen, mode, note=str(exc)))  # type: ignore[arg-type]
            return
        if r is None or r.same:
            self.queue.put_nowait(Replanned(name, gen, mode, same=r is not None))  # type: ignore[arg-type]
            return
        before = self.plan.choices.get(name)
        old_port = self.plan.ports.get(name)
        self.plan.apply(r, deps)
        changed = tuple(r.changed) if deps else ()
        for n in (name, *changed):
            self._target(n)
        if r.choice is not None and (before is None or r.choice.index != before.index):
            self.notes[name] = r.choice.note
            back = before is not None and r.choice.index < before.index
            why = "switched back" if back else "failed over"
            note = f"{why} from {before.variant if before else '?'} to {r.choice.variant}"
        elif r.port is not None and (old_port is None or r.port.port != old_port.port):
            note = f"now on port {r.port.port}"
            if r.port.holder:
                note += f" (port {r.port.asked} is held by {describe_holder(r.port.holder)})"
        else:
            note = "started by the stack" if old_port and old_port.adopted else "replanned"
        if changed:
            note += f"; restarting {', '.join(changed)} with the new URL"
        elif r.changed:
            note += f"; not restarting {', '.join(r.changed)} (--no-deps)"
        self._event(f"{name}: {note}")
        specs = {n: self.plan.services[n] for n in (name, *(r.updated if deps else ()))}
        ev = Replanned(name, gen, mode, specs, changed, r.adopted, note=note)  # type: ignore[arg-type]
        self.queue.put_nowait(ev)

    async def _watch_preferred(self, every: float = 5.0) -> None:
        """Say so in `stack status` when a preferred variant answers again; switching back is
        left to `stack restart NAME`, so that no run in progress is cut."""
        said: dict[str, str | None] = {}
        while True:
            await asyncio.sleep(every)
            for name, choice in list(self.plan.choices.items()):
                back = await preferred_answers(self.cfg, self.plan, name) if choice.index else None
                if back and said.get(name) != back:
                    self._event(
                        f"{name}: {back} answers again; `stack restart {name}` switches back"
                    )
                said[name] = back

    def _event(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        self.emit({"t": "note", "text": text})
        self.changed_soon()

    def cancel(self, name: str) -> None:
        for job in self.jobs.pop(name, set()):
            job.cancel()

    def call_at(self, when: float, event: Event) -> None:
        self.loop.call_at(when, self.queue.put_nowait, event)

    def changed(self, name: str) -> None:
        s = self.sup.svcs[name]
        self.emit({"t": "state", "service": name, "state": s.state, "reason": s.reason})
        self.changed_soon()

    def changed_soon(self) -> None:
        if not self._flush_pending:  # one state-file write per burst of changes
            self._flush_pending = True
            self.loop.call_soon(self.flush)

    def up_ready(self) -> None:
        self.flush()
        self.emit({"t": "ready", "status": self.snapshot()})

    def finished(self, failure: Failure | None) -> None:
        if failure is None:
            self.emit({"t": "stopped"})
        else:
            skipped = [s.name for s in self.sup.svcs.values() if s.state == "skipped"]
            log = tail(self.paths.log(failure.name), LOG_TAIL + 1)
            # only this up's lines: an earlier run's output would mislead
            since = max((i for i, line in enumerate(log) if line.endswith(UP_MARK)), default=-1)
            log = log[since + 1 :][-LOG_TAIL:]
            self.emit(
                {
                    "t": "failed",
                    "service": failure.name,
                    "why": failure.why,
                    "log": log,
                    "skipped": skipped,
                    "hint": failure_hint(failure, self.plan.services[failure.name].hint),
                }
            )

    # -- processes -----------------------------------------------------------------------------
    async def _spawn(self, name: str, gen: int) -> None:
        svc = self.plan.services[name]
        port = self.plan.ports.get(name)
        fds = [port.sock.fileno()] if port and port.sock else []
        if port and not port.sock and not port.adopted and not port_is_free(svc.host, port.port):
            # it binds the port itself, and something took it since: move (and say so)
            self._line(name, f"[stack] port {port.port} is taken now; moving")
            self.queue.put_nowait(PortTaken(name, gen))
            return
        try:
            proc = await procs.spawn(
                shlex.split(svc.command or ""), self._cwd(name), self._env(name), fds
            )
        except (OSError, ValueError) as exc:
            self._line(name, f"[stack] cannot start `{svc.command}`: {exc}")
            self.queue.put_nowait(SpawnFailed(name, gen, f"`{svc.command}`: {exc}"))
            return
        self.procs[name] = proc
        self._track(proc.pid)
        self._line(name, f"[stack] started pid {proc.pid}: {svc.command}")
        self.queue.put_nowait(Spawned(name, gen, proc.pid))
        pump = asyncio.ensure_future(self._pump(name, proc))
        code = await proc.exited
        # whatever the service left in its group goes with it; then the pipe reaches EOF
        procs.kill_group(proc.pid)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), 2.0)
        pump.cancel()
        self._untrack(proc.pid)
        self.procs.pop(name, None)
        self._line(name, f"[stack] pid {proc.pid} exited with code {code}")
        self.queue.put_nowait(Exited(name, gen, code))

    async def _pump(self, name: str, proc: procs.Child) -> None:
        async for line in procs.output_lines(proc.stdout):
            self._line(name, line)

    def _line(self, name: str, line: str) -> None:
        self.logs[name].write(line)
        if self.printer is not None:
            self.printer(name, line)

    def _track(self, pid: int) -> None:
        if self.watchdog:
            self.watchdog.track(pid)  # pid == pgid: every child leads its own session

    def _untrack(self, pid: int) -> None:
        if self.watchdog:
            self.watchdog.untrack(pid)

    def _job(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.jobs[name].add(task)
        task.add_done_callback(lambda t: self.jobs[name].discard(t))

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def _cwd(self, name: str) -> str:
        return str((self.cfg.dir / self.plan.services[name].cwd).resolve())

    def _env(self, name: str) -> dict[str, str]:
        return {**self.cfg.env, "PYTHONUNBUFFERED": "1", **self.plan.services[name].env}

    # -- state, control, loop ------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now_mono, now_wall = self.loop.time(), time.time()
        phase = {"done": "failed" if self.sup.failure else "stopped"}.get(
            self.sup.phase, self.sup.phase
        )
        services = {}
        for name, s in self.sup.svcs.items():
            svc, port = self.plan.services[name], self.plan.ports.get(name)
            choice = self.plan.choices.get(name)
            services[name] = {
                "state": s.state,
                "pid": s.pid,
                "port": svc.port,
                "asked_port": port.asked if port else svc.port,
                "adopted": bool(port and port.adopted),
                "moved": bool(port and port.moved),
                "url": svc.url,
                "health": s.health if svc.probe else None,
                "restarts": s.restarts,
                "uptime": round(now_mono - s.started_at, 1) if s.pid and s.started_at else None,
                "started_at": now_wall - (now_mono - s.started_at) if s.started_at else None,
                "ready_after": round(s.ready_at - s.started_at, 3)
                if s.ready_at and s.started_at
                else None,
                "last_exit": s.last_exit,
                "reason": s.reason,
                "variant": choice.variant if choice else None,
                "port_holder": port.holder if port else None,
                "ready_at": now_wall - (now_mono - s.ready_at) if s.ready_at else None,
            }
        return {
            "stack_file": str(self.cfg.path),
            "supervisor_pid": os.getpid(),
            "phase": phase,
            "started_at": self.started_wall,
            "notes": [*self.notes.values(), *self.events],
            "services": services,
        }

    def flush(self) -> None:
        self._flush_pending = False
        write_state(self.paths.state, self.snapshot())

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            req = json.loads(await asyncio.wait_for(reader.readline(), 5.0))
            cmd, name = req.get("cmd"), req.get("service")
            if cmd == "down":
                self.queue.put_nowait(StopRequested("stack down"))
                reply = {"ok": True}
            elif cmd == "restart" and name in self.sup.svcs:
                self.queue.put_nowait(RestartRequested(name, bool(req.get("deps", True))))
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown command or service: {cmd} {name or ''}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, TimeoutError):
            pass
        finally:
            writer.close()

    def _on_signal(self, sig: int) -> None:
        # handlers only record; the loop acts. A second Ctrl-C stops waiting for grace periods.
        self._interrupts += 1
        if self._interrupts > 1:
            for proc in list(self.procs.values()):
                procs.kill_group(proc.pid)
        self.queue.put_nowait(StopRequested(f"received {signal.Signals(sig).name}"))

    async def run(self) -> Failure | None:
        procs.on_stop_signals(self.loop, self._on_signal)
        server = await procs.serve_control(self.paths.control, self._control)
        try:
            self.sup.begin()
            self.flush()
            self._background(self._watch_preferred())
            while self.sup.phase != "done":
                self.sup.handle(await self.queue.get())
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                Path(self.paths.control).unlink()
            for task in list(self.background) + [t for s in self.jobs.values() for t in s]:
                task.cancel()
            self.plan.close_sockets()
            for log in self.logs.values():
                log.close()
        self.flush()
        return self.sup.failure
