"""The supervisor's decisions, replayed with a fake clock and fake effects: no processes, no
sleeping. Each test scripts a history of events and checks what the supervisor asked for."""

from __future__ import annotations

from typing import Any

from stack.config import Service
from stack.events import (
    Event,
    Exited,
    ProbeDone,
    Replanned,
    RestartRequested,
    Spawned,
    StopRequested,
    TaskDone,
    Tick,
)
from stack.supervisor import Failure, Supervisor


class FakeEffects:
    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[Any, ...]] = []
        self.timers: list[tuple[float, Event]] = []
        self.ready = False
        self.done: list[Failure | None] = []

    def spawn(self, name: str, gen: int) -> None:
        self.calls.append(("spawn", name))

    def signal(self, name: str, sig: int) -> None:
        self.calls.append(("signal", name, sig))

    def probe(self, name: str, gen: int) -> None:
        self.calls.append(("probe", name))

    def run_task(self, name: str, gen: int, phase: str, index: int) -> None:
        self.calls.append(("task", name, phase, index))

    def cancel(self, name: str) -> None:
        pass

    def replan(self, name: str, gen: int, mode: str, deps: bool) -> None:
        self.calls.append(("replan", name, mode, deps))

    def call_at(self, when: float, event: Event) -> None:
        self.timers.append((when, event))

    def changed(self, name: str) -> None:
        pass

    def up_ready(self) -> None:
        self.ready = True

    def finished(self, failure: Failure | None) -> None:
        self.done.append(failure)

    def take(self) -> list[tuple[Any, ...]]:
        out, self.calls = self.calls, []
        return out


def svc(**kw: Any) -> Service:
    return Service.model_validate({"command": "x", **kw})


PROBE = {
    "http": "/health",
    "interval": 1,
    "liveness_interval": 5,
    "start_timeout": 10,
    "failure_threshold": 2,
}


class Harness:
    def __init__(self, services: dict[str, Service]) -> None:
        self.fx = FakeEffects()
        self.sup = Supervisor(services, self.fx, lambda: self.fx.now)
        self.pid = 100

    def send(self, ev: Event) -> None:
        self.sup.handle(ev)

    def gen(self, name: str) -> int:
        return self.sup.svcs[name].gen

    def spawned(self, name: str) -> None:
        self.pid += 1
        self.send(Spawned(name, self.gen(name), self.pid))

    def exited(self, name: str, code: int) -> None:
        self.send(Exited(name, self.gen(name), code))

    def probe(self, name: str, ok: bool, detail: str = "") -> None:
        self.send(ProbeDone(name, self.gen(name), ok, detail or ("200" if ok else "refused")))

    def fire(self, name: str, what: str) -> float:
        """Advance the clock to the next matching timer and deliver it."""
        due = sorted(
            (
                t
                for t in self.fx.timers
                if isinstance(t[1], Tick) and t[1].name == name and t[1].what == what
            ),
            key=lambda t: t[0],
        )
        assert due, f"no {what} timer for {name}"
        when, ev = due[0]
        self.fx.timers.remove(due[0])
        self.fx.now = max(self.fx.now, when)
        self.send(ev)
        return when

    def state(self, name: str) -> str:
        return self.sup.svcs[name].state


def test_dependencies_start_in_order_and_wait_for_health() -> None:
    h = Harness(
        {
            "app": svc(depends_on={"db": {"condition": "healthy"}}),
            "db": svc(port=5000, probe=PROBE),
            "log": svc(),
        }
    )
    h.sup.begin()
    assert h.fx.take() == [("spawn", "db"), ("spawn", "log")]
    h.spawned("db")
    h.spawned("log")
    assert h.state("log") == "running" and not h.fx.ready
    h.fire("db", "probe")
    h.probe("db", False)
    assert h.fx.take() == [("probe", "db")]  # not healthy yet: app still waits
    h.fire("db", "probe")
    h.probe("db", True)
    assert ("spawn", "app") in h.fx.take()
    h.spawned("app")
    assert h.fx.ready and h.sup.phase == "up"


def test_failed_health_stops_everything_and_skips_dependents() -> None:
    h = Harness(
        {
            "db": svc(port=5000, probe=PROBE),
            "side": svc(stop_grace=3),
            "app": svc(depends_on={"db": {"condition": "healthy"}}),
        }
    )
    h.sup.begin()
    h.spawned("db")
    h.spawned("side")
    for _ in range(3):
        h.fire("db", "probe")
        h.probe("db", False, "GET /health: connection refused")
    h.fx.take()
    at = h.fire("db", "start_timeout")
    assert at == 10
    assert h.sup.failure and h.sup.failure.name == "db"
    assert "not healthy after 10s" in h.sup.failure.why and "refused" in h.sup.failure.why
    assert h.state("app") == "skipped"
    calls = h.fx.take()
    assert ("signal", "db", "SIGTERM") in calls and ("signal", "side", "SIGTERM") in calls
    assert ("spawn", "app") not in calls
    h.exited("db", -15)
    h.fire("side", "kill")  # side ignores TERM: killed after its grace period
    assert h.fx.take() == [("signal", "side", "SIGKILL")]
    assert h.fx.now == 13
    h.exited("side", -9)
    assert h.fx.done == [h.sup.failure]


def test_exit_before_healthy_fails_the_up() -> None:
    h = Harness({"db": svc(port=5000, probe=PROBE)})
    h.sup.begin()
    h.spawned("db")
    h.exited("db", 3)
    assert h.sup.failure == Failure("db", "exited with code 3 before becoming healthy")
    assert h.fx.done == [h.sup.failure]


def test_crash_restarts_with_exponential_backoff_until_the_cap() -> None:
    h = Harness(
        {"w": svc(restart={"policy": "on-failure", "backoff": 1, "max_restarts": 3, "window": 60})}
    )
    h.sup.begin()
    h.spawned("w")
    assert h.fx.ready
    delays = []
    for _ in range(3):
        crashed_at = h.fx.now
        h.exited("w", 1)
        assert h.state("w") == "backoff"
        delays.append(h.fire("w", "restart") - crashed_at)
        assert h.fx.take()[-1] == ("spawn", "w")
        h.spawned("w")
    assert delays == [1, 2, 4]
    h.exited("w", 1)
    assert h.state("w") == "failed"
    assert h.sup.svcs["w"].restarts == 3
    assert "gave up after 3 restarts in 60s" in h.sup.svcs["w"].reason


def test_restart_window_forgets_old_crashes() -> None:
    h = Harness(
        {"w": svc(restart={"policy": "always", "backoff": 1, "max_restarts": 1, "window": 10})}
    )
    h.sup.begin()
    h.spawned("w")
    h.exited("w", 0)  # `always` restarts even a clean exit
    h.fire("w", "restart")
    h.spawned("w")
    h.fx.now += 20  # outside the window: the first restart no longer counts
    h.exited("w", 1)
    assert h.state("w") == "backoff"


def test_clean_exit_completes_and_releases_completed_dependents() -> None:
    h = Harness(
        {
            "migrate": svc(restart="on-failure"),
            "app": svc(depends_on={"migrate": {"condition": "completed_successfully"}}),
        }
    )
    h.sup.begin()
    assert h.fx.take() == [("spawn", "migrate")]
    h.spawned("migrate")
    h.exited("migrate", 0)
    assert h.state("migrate") == "completed"
    assert h.fx.take() == [("spawn", "app")]


def test_liveness_failures_restart_the_service() -> None:
    h = Harness({"db": svc(port=5000, probe=PROBE, restart={"backoff": 0.5})})
    h.sup.begin()
    h.spawned("db")
    h.fire("db", "probe")
    h.probe("db", True)
    assert h.state("db") == "healthy"
    assert h.fire("db", "probe") == 5  # liveness runs at its own, slower pace
    h.probe("db", False)
    assert h.state("db") == "healthy"
    h.fire("db", "probe")
    h.probe("db", False, "GET /health → 500")
    assert h.state("db") == "stopping"
    assert ("signal", "db", "SIGTERM") in h.fx.take()
    h.exited("db", -15)
    assert h.state("db") == "backoff"
    assert "liveness probe failed 2 times" in h.sup.svcs["db"].reason
    h.fire("db", "restart")
    assert h.fx.take()[-1] == ("spawn", "db")


def test_down_stops_in_reverse_dependency_order() -> None:
    h = Harness(
        {
            "db": svc(),
            "api": svc(depends_on=["db"]),
            "ui": svc(depends_on=["api"]),
        }
    )
    h.sup.begin()
    for name in ("db", "api", "ui"):
        h.spawned(name)
    h.fx.take()
    h.send(StopRequested("down"))
    assert h.fx.take() == [("signal", "ui", "SIGTERM")]
    h.exited("ui", 0)
    assert h.fx.take() == [("signal", "api", "SIGTERM")]
    h.exited("api", 0)
    assert h.fx.take() == [("signal", "db", "SIGTERM")]
    assert not h.fx.done
    h.exited("db", 0)
    assert h.fx.done == [None]
    assert {s.state for s in h.sup.svcs.values()} == {"stopped"}


def test_pre_start_tasks_run_before_the_process_and_their_failure_fails_the_up() -> None:
    tasks = [{"run": "alembic upgrade head"}, {"run": "seed"}]
    h = Harness({"api": svc(pre_start=tasks)})
    h.sup.begin()
    assert h.fx.take() == [("task", "api", "pre_start", 0)]
    h.send(TaskDone("api", h.gen("api"), "pre_start", 0, True, "ok"))
    assert h.fx.take() == [("task", "api", "pre_start", 1)]
    h.send(TaskDone("api", h.gen("api"), "pre_start", 1, False, "exited with code 2"))
    assert h.sup.failure and "'seed' failed: exited with code 2" in h.sup.failure.why
    assert h.fx.done == [h.sup.failure]  # nothing was running


def test_manual_restart_and_stale_events_are_ignored() -> None:
    h = Harness({"a": svc(port=5000, probe=PROBE)})
    h.sup.begin()
    h.spawned("a")
    h.fire("a", "probe")
    h.probe("a", True)
    old_gen = h.gen("a")
    h.fx.take()
    h.send(RestartRequested("a"))
    assert h.fx.take() == [("replan", "a", "restart", True)]
    h.send(Replanned("a", h.gen("a"), "restart", same=True))  # nothing else to run it as
    assert h.fx.take() == [("signal", "a", "SIGTERM")]
    h.exited("a", -15)
    assert h.fx.take() == [("spawn", "a")]
    assert h.sup.svcs["a"].restarts == 0  # a manual restart is not a crash
    h.send(ProbeDone("a", old_gen, False, "stale"))  # from the previous incarnation
    assert h.state("a") == "starting"


def test_adopted_and_external_services_count_as_healthy() -> None:
    fx = FakeEffects()
    services = {
        "runtime": svc(port=11434, probe=PROBE),
        "remote": Service.model_validate({"url": "http://x/v1", "probe": PROBE}),
        "api": svc(
            depends_on={"runtime": {"condition": "healthy"}, "remote": {"condition": "healthy"}}
        ),
    }
    sup = Supervisor(services, fx, lambda: fx.now, adopted=frozenset({"runtime", "remote"}))
    sup.begin()
    assert fx.take() == [("spawn", "api")]
    assert (sup.svcs["runtime"].state, sup.svcs["remote"].state) == ("adopted", "external")
    sup.handle(Spawned("api", sup.svcs["api"].gen, 7))
    assert fx.ready
    sup.handle(StopRequested("down"))
    assert fx.take() == [("signal", "api", "SIGTERM")]  # adopted ones are not ours to stop
    sup.handle(Exited("api", sup.svcs["api"].gen, 0))
    assert fx.done == [None]


def test_a_failed_one_shot_fails_the_up_and_its_dependents_never_start() -> None:
    h = Harness(
        {
            "migrate": svc(restart="no"),
            "api": svc(depends_on={"migrate": {"condition": "completed_successfully"}}),
        }
    )
    h.sup.begin()
    h.spawned("migrate")
    h.exited("migrate", 2)
    assert h.sup.failure and h.sup.failure.name == "migrate"
    assert h.state("api") == "skipped"
    assert ("spawn", "api") not in h.fx.take()


def test_a_crash_while_up_waits_fails_the_up_instead_of_restarting() -> None:
    h = Harness(
        {
            "runtime": svc(port=5000, probe=PROBE),
            "api": svc(port=5001, probe=PROBE, depends_on={"runtime": {"condition": "healthy"}}),
        }
    )
    h.sup.begin()
    h.spawned("runtime")
    h.fire("runtime", "probe")
    h.probe("runtime", True)
    h.spawned("api")
    h.exited("runtime", -11)  # healthy, then SIGSEGV on the first real request
    assert h.sup.failure == Failure("runtime", "killed by SIGSEGV while the stack started")
    assert h.state("runtime") == "failed" and ("signal", "api", "SIGTERM") in h.fx.take()


HEALTHY_RUNTIME = {"runtime": {"condition": "healthy"}}


def _adopted_runtime() -> tuple[FakeEffects, Supervisor]:
    fx = FakeEffects()
    services = {
        "runtime": svc(port=11434, probe=PROBE, adopt=True),
        "sovereign": svc(port=8080, probe=PROBE, depends_on={"runtime": {"condition": "healthy"}}),
        "assistants": svc(
            port=8000, probe=PROBE, depends_on={"sovereign": {"condition": "healthy"}}
        ),
    }
    sup = Supervisor(services, fx, lambda: fx.now, adopted=frozenset({"runtime"}))
    sup.begin()
    for name in ("sovereign", "assistants"):
        s = sup.svcs[name]
        sup.handle(Spawned(name, s.gen, 10 + len(name)))
        sup.handle(ProbeDone(name, s.gen, True, "200"))
    assert sup.phase == "up"
    fx.take()
    return fx, sup


def _probe_runtime(fx: FakeEffects, sup: Supervisor, ok: bool) -> None:
    tick = next(t for t in fx.timers if isinstance(t[1], Tick) and t[1].name == "runtime")
    fx.timers.remove(tick)
    fx.now = max(fx.now, tick[0])
    sup.handle(tick[1])
    assert fx.take() == [("probe", "runtime")]
    sup.handle(ProbeDone("runtime", sup.svcs["runtime"].gen, ok, "ok" if ok else "refused"))


def test_an_adopted_runtime_that_goes_away_fails_over_and_sovereign_follows() -> None:
    fx, sup = _adopted_runtime()
    rt, sov, asst = sup.svcs["runtime"], sup.svcs["sovereign"], sup.svcs["assistants"]
    _probe_runtime(fx, sup, True)
    assert rt.state == "adopted"
    _probe_runtime(fx, sup, False)
    assert rt.state == "adopted" and rt.health.startswith("failing (1/2)")
    _probe_runtime(fx, sup, False)
    assert rt.state == "lost" and fx.take() == [("replan", "runtime", "failover", True)]
    embedded = svc(port=8081, probe=PROBE)
    new_sov = svc(port=8080, probe=PROBE, env={"URL": "x"}, depends_on=HEALTHY_RUNTIME)
    specs = {"runtime": embedded, "sovereign": new_sov}
    sup.handle(Replanned("runtime", rt.gen, "failover", specs, ("sovereign",), note="switched"))
    # sovereign is stopped first; the new runtime starts (nothing depends on it running)
    assert fx.take() == [("signal", "sovereign", "SIGTERM"), ("spawn", "runtime")]
    assert rt.spec is embedded and sov.state == "stopping" and asst.state == "healthy"
    sup.handle(Exited("sovereign", sov.gen, -15))
    assert sov.state == "pending" and fx.take() == []  # waits for the new runtime
    sup.handle(Spawned("runtime", rt.gen, 50))
    sup.handle(ProbeDone("runtime", rt.gen, True, "200"))
    assert fx.take()[-1] == ("spawn", "sovereign") and sov.spec is new_sov
    sup.handle(Spawned("sovereign", sov.gen, 51))
    sup.handle(ProbeDone("sovereign", sov.gen, True, "200"))
    assert sov.state == "healthy" and asst.state == "healthy" and asst.pid == 20
    assert sup.failure is None and sup.phase == "up"


def test_a_lost_runtime_with_nothing_to_fall_back_to_is_watched_until_it_returns() -> None:
    fx, sup = _adopted_runtime()
    rt = sup.svcs["runtime"]
    _probe_runtime(fx, sup, False)
    _probe_runtime(fx, sup, False)
    assert fx.take() == [("replan", "runtime", "failover", True)]
    sup.handle(Replanned("runtime", rt.gen, "failover", None, note="nothing else fits"))
    assert rt.state == "lost" and "nothing else fits" in rt.reason
    _probe_runtime(fx, sup, True)
    assert rt.state == "adopted" and rt.health == "healthy"


def test_restart_back_to_the_preferred_variant_stops_the_fallback() -> None:
    fx, sup = _adopted_runtime()
    rt, sov = sup.svcs["runtime"], sup.svcs["sovereign"]
    _probe_runtime(fx, sup, False)
    _probe_runtime(fx, sup, False)
    specs = {"runtime": svc(port=8081, probe=PROBE)}
    sup.handle(Replanned("runtime", rt.gen, "failover", specs, (), note="to embedded"))
    sup.handle(Spawned("runtime", rt.gen, 50))
    sup.handle(ProbeDone("runtime", rt.gen, True, "200"))
    assert rt.state == "healthy" and sov.state == "healthy"  # unchanged spec: untouched
    fx.take()
    sup.handle(RestartRequested("runtime"))
    assert fx.take() == [("replan", "runtime", "restart", True)]
    back = {
        "runtime": svc(port=11434, probe=PROBE),
        "sovereign": svc(port=8080, probe=PROBE, depends_on=HEALTHY_RUNTIME),
    }
    sup.handle(Replanned("runtime", rt.gen, "restart", back, ("sovereign",), adopted=True))
    calls = fx.take()
    assert ("signal", "sovereign", "SIGTERM") in calls and ("signal", "runtime", "SIGTERM") in calls
    sup.handle(Exited("runtime", rt.gen, -15))
    assert rt.state == "adopted" and rt.pid is None
    sup.handle(Exited("sovereign", sov.gen, -15))
    assert fx.take()[-1] == ("spawn", "sovereign")
