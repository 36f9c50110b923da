"""The supervisor's decisions: one `handle(event)` per event from the queue; the OS (spawn,
signal, probe, tasks, timers) is reached through `Effects`, and time through a clock."""

# Both are injected, so tests replay scripted histories without processes or sleeping.

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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
    Tick,
)
from stack.spec import Service, dependency_order
from stack.states import (
    DEAD_END,
    OUTSIDE,
    READY,
    STARTED,
    Effects,
    Failure,
    ServiceState,
    StopWhy,
    describe_exit,
    failure_hint,
)
from stack.switching import Switching

__all__ = ["Effects", "Failure", "ServiceState", "Supervisor", "describe_exit", "failure_hint"]


class Supervisor(Switching):
    def __init__(
        self,
        services: dict[str, Service],
        effects: Effects,
        clock: Callable[[], float],
        adopted: frozenset[str] = frozenset(),
    ) -> None:
        self.fx = effects
        self.clock = clock
        self.order = dependency_order({n: list(s.depends_on) for n, s in services.items()})[0]
        self.svcs = {n: ServiceState(n, services[n]) for n in self.order}
        self.dependents = {
            n: [m for m in self.order if n in services[m].depends_on] for n in self.order
        }
        self.adopted = adopted
        self.phase: Literal["idle", "starting", "up", "stopping", "done"] = "idle"
        self.failure: Failure | None = None

    # -- entry points ------------------------------------------------------------------------
    def begin(self) -> None:
        self.phase = "starting"
        for name in self.adopted:
            self._adopt(self.svcs[name])
        self._advance()

    def handle(self, ev: Event) -> None:
        if isinstance(ev, StopRequested):
            self._stop_all(ev.reason)
            return
        if isinstance(ev, RestartRequested):
            self._restart(ev.name, ev.deps)
            return
        s = self.svcs[ev.name]
        if isinstance(ev, Replanned) and ev.mode == "restart":
            self._on_replanned(s, ev)  # asked for by name: whatever happened since
            return
        if ev.gen != s.gen:
            return  # a timer or result from an earlier incarnation
        match ev:
            case Spawned():
                self._on_spawned(s, ev.pid)
            case SpawnFailed():
                s.spawning = False
                self._not_ready(s, f"could not start: {ev.error}")
            case Exited():
                self._on_exit(s, ev.code)
            case ProbeDone():
                self._on_probe(s, ev.ok, ev.detail)
            case TaskDone():
                self._on_task(s, ev)
            case Tick():
                self._on_tick(s, ev.what)
            case PortTaken():
                s.spawning = False
                self._set(s.name, "moving", reason=f"port {s.spec.port} is taken now")
                self.fx.replan(s.name, s.gen, "port", True)
            case Replanned():
                self._on_replanned(s, ev)

    # -- starting ----------------------------------------------------------------------------
    def _dep_verdict(self, dep: str, condition: str) -> str:
        state = self.svcs[dep].state
        ok = {
            "started": STARTED,
            "healthy": {"healthy", "adopted", "external"},
            "completed_successfully": {"completed"},
        }[condition]
        if state in ok:
            return "ok"
        return "never" if state in DEAD_END or (state == "completed") else "wait"

    def _advance(self) -> None:
        if self.phase not in ("starting", "up"):
            return
        for name in self.order:
            s = self.svcs[name]
            if s.state != "pending":
                continue
            verdicts = {d: self._dep_verdict(d, c.condition) for d, c in s.spec.depends_on.items()}
            blocked = [d for d, v in verdicts.items() if v == "never"]
            if blocked:
                self._set(name, "skipped", reason=f"dependency {blocked[0]} did not come up")
            elif all(v == "ok" for v in verdicts.values()):
                self._launch(s)
        if self.phase == "starting" and all(s.state in READY for s in self.svcs.values()):
            self.phase = "up"
            self.fx.up_ready()

    def _launch(self, s: ServiceState) -> None:
        s.gen += 1
        s.probe_failures = 0
        s.health = "unknown"
        if s.spec.pre_start:
            self._set(s.name, "pre-start")
            self.fx.run_task(s.name, s.gen, "pre_start", 0)
        else:
            self._spawn(s)

    def _spawn(self, s: ServiceState) -> None:
        s.spawning = True
        self._set(s.name, "starting")
        self.fx.spawn(s.name, s.gen)

    def _on_spawned(self, s: ServiceState, pid: int) -> None:
        s.spawning, s.pid = False, pid
        now = self.clock()
        s.started_at = now
        if self.phase == "stopping" or s.stopping_for:
            self._stop_proc(s, s.stopping_for or "down")
            return
        probe = s.spec.probe
        if probe is None:
            self._ready(s, "running")
            return
        self.fx.call_at(now + probe.initial_delay, Tick(s.name, s.gen, "probe"))
        self.fx.call_at(now + probe.start_timeout, Tick(s.name, s.gen, "start_timeout"))
        self.fx.changed(s.name)
        self._advance()  # `started` dependents may go now

    def _on_probe(self, s: ServiceState, ok: bool, detail: str) -> None:
        probe = s.spec.probe
        assert probe is not None
        s.last_probe = detail
        if s.state in OUTSIDE:
            self._on_outside_probe(s, ok, detail)
            return
        if s.state == "starting":
            if ok:
                s.health = "healthy"
                self._after_healthy(s)
            else:
                self.fx.call_at(self.clock() + probe.interval, Tick(s.name, s.gen, "probe"))
            return
        if s.state not in ("healthy", "post-start"):
            return
        if ok:
            s.probe_failures, s.health = 0, "healthy"
        else:
            s.probe_failures += 1
            s.health = f"failing ({s.probe_failures}/{probe.failure_threshold}): {detail}"
            if s.probe_failures >= probe.failure_threshold and s.spec.restart.policy != "no":
                s.reason = f"liveness probe failed {s.probe_failures} times: {detail}"
                self._stop_proc(s, "liveness")
                return
        self.fx.changed(s.name)
        self.fx.call_at(self.clock() + probe.liveness_interval, Tick(s.name, s.gen, "probe"))

    def _after_healthy(self, s: ServiceState) -> None:
        if s.spec.post_healthy:
            self._set(s.name, "post-start")
            self.fx.run_task(s.name, s.gen, "post_healthy", 0)
        else:
            self._ready(s, "healthy")

    def _ready(self, s: ServiceState, state: str) -> None:
        s.ready_at = self.clock()
        self._set(s.name, state, reason="")
        if state == "healthy" and s.spec.probe:
            # liveness from here on; the probe chain continues from the readiness check
            when = self.clock() + s.spec.probe.liveness_interval
            self.fx.call_at(when, Tick(s.name, s.gen, "probe"))
        self._advance()

    def _on_task(self, s: ServiceState, ev: TaskDone) -> None:
        tasks = s.spec.pre_start if ev.phase == "pre_start" else s.spec.post_healthy
        if not ev.ok:
            self._not_ready(s, f"{ev.phase} task {tasks[ev.index].label!r} failed: {ev.detail}")
        elif ev.index + 1 < len(tasks):
            self.fx.run_task(s.name, s.gen, ev.phase, ev.index + 1)
        elif ev.phase == "pre_start":
            self._spawn(s)
        else:
            self._ready(s, "healthy")

    def _on_tick(self, s: ServiceState, what: str) -> None:
        if what == "probe" and s.state in ("starting", "healthy", "post-start", *OUTSIDE):
            self.fx.probe(s.name, s.gen)
        elif what == "start_timeout" and s.state == "starting":
            timeout = s.spec.probe.start_timeout if s.spec.probe else 0
            why = s.last_probe or "no probe answered yet"
            self._not_ready(s, f"not healthy after {timeout:g}s (last probe: {why})")
        elif what == "restart" and s.state == "backoff":
            self._launch(s)
        elif what == "kill" and s.state == "stopping" and s.has_process:
            self.fx.signal(s.name, "SIGKILL")

    # -- failing, exiting, restarting --------------------------------------------------------
    def _not_ready(self, s: ServiceState, why: str) -> None:
        s.reason = why
        if self.phase == "starting":
            self._fail_up(s, why)
        elif s.has_process:
            self._stop_proc(s, "liveness")  # the restart policy decides once it has exited
        else:
            self._after_exit(s, 1)

    def _fail_up(self, s: ServiceState, why: str) -> None:
        self.failure = Failure(s.name, why)
        self.fx.cancel(s.name)
        self._set(s.name, "failed", reason=why)
        self._stop_all(f"{s.name} failed")

    def _on_exit(self, s: ServiceState, code: int) -> None:
        s.pid, s.spawning = None, False
        s.last_exit = describe_exit(code)
        if s.state == "stopping":
            why, s.stopping_for = s.stopping_for, None
            if self.phase == "stopping":
                self._set(
                    s.name, "stopped" if s.name != getattr(self.failure, "name", None) else "failed"
                )
                self._continue_stop()
            elif why == "restart":
                self._launch(s)
            elif why == "switch":
                self._take_new(s)
            elif why == "requeue":
                s.gen += 1
                self._set(s.name, "pending", reason=s.reason)
                self._advance()
            else:
                self._after_exit(s, code, forced=True)
            return
        if self.phase == "stopping":
            self._set(s.name, "stopped")
            self._continue_stop()
            return
        if code == 0 and s.spec.restart.policy != "always":
            self._set(s.name, "completed", reason="")
            self._advance()
        elif self.phase == "starting":
            # while `stack up` waits, a crash is reported, not retried behind its back
            when = "before becoming healthy" if s.state not in READY else "while the stack started"
            self._fail_up(s, f"{s.last_exit} {when}")
        else:
            self._after_exit(s, code)

    def _after_exit(self, s: ServiceState, code: int, forced: bool = False) -> None:
        rs = s.spec.restart
        if not (rs.policy == "always" or (rs.policy == "on-failure" and (code != 0 or forced))):
            if self.phase == "starting":
                self._fail_up(s, s.reason or s.last_exit or "exited")
            else:
                self._set(s.name, "exited" if code == 0 else "failed")
                self._advance()
            return
        now = self.clock()
        s.restart_times = [t for t in s.restart_times if now - t < rs.window]
        if len(s.restart_times) >= rs.max_restarts:
            why = f"gave up after {len(s.restart_times)} restarts in {rs.window:g}s"
            if self.phase == "starting":
                self._fail_up(s, f"{why}: {s.reason or s.last_exit}")
            else:
                self._set(s.name, "failed", reason=f"{why} (last: {s.reason or s.last_exit})")
                self.fx.replan(s.name, s.gen, "failover", True)  # another variant may fit
                self._advance()
            return
        delay = min(rs.backoff * 2 ** len(s.restart_times), rs.max_backoff)
        s.restart_times.append(now)
        s.restarts += 1
        s.gen += 1  # so that timers of the dead incarnation are ignored
        cause = s.reason if forced and s.reason else s.last_exit
        self._set(s.name, "backoff", reason=f"{cause}; restarting in {delay:g}s")
        self.fx.call_at(now + delay, Tick(s.name, s.gen, "restart"))

    def _restart(self, name: str, deps: bool) -> None:
        s = self.svcs[name]
        if self.phase not in ("starting", "up"):
            return
        # decided again first: the preferred variant may answer again, a port may be taken
        self.fx.replan(name, s.gen, "restart", deps)

    def _stop_proc(self, s: ServiceState, why: StopWhy) -> None:
        s.stopping_for = why
        self._set(s.name, "stopping")
        self.fx.cancel(s.name)
        if s.pid is None:
            return  # still spawning: stopped as soon as Spawned arrives
        self.fx.signal(s.name, s.spec.stop_signal)
        self.fx.call_at(self.clock() + s.spec.stop_grace, Tick(s.name, s.gen, "kill"))

    def _stop_all(self, reason: str) -> None:
        if self.phase in ("stopping", "done"):
            return
        self.phase = "stopping"
        for s in self.svcs.values():
            if not s.has_process and s.state not in (
                "failed",
                "adopted",
                "external",
                "completed",
                "exited",
            ):
                self.fx.cancel(s.name)
                s.gen += 1
                new = "skipped" if s.state == "pending" else "stopped"
                self._set(s.name, new, reason=reason if new == "skipped" else s.reason)
        self._continue_stop()

    def _continue_stop(self) -> None:
        # reverse dependency order: a service stops once nothing that depends on it runs
        for name in reversed(self.order):
            s = self.svcs[name]
            waiting = any(self.svcs[d].has_process for d in self.dependents[name])
            if s.has_process and s.state != "stopping" and not waiting:
                self._stop_proc(s, "down")
        if not any(s.has_process for s in self.svcs.values()) and self.phase != "done":
            self.phase = "done"
            self.fx.finished(self.failure)

    def _set(
        self, name: str, state: str, *, reason: str | None = None, health: str | None = None
    ) -> None:
        s = self.svcs[name]
        s.state = state
        if reason is not None:
            s.reason = reason
        if health is not None:
            s.health = health
        self.fx.changed(name)
