"""The supervisor's decisions about what it does not run itself and about switching: liveness
of adopted/external services, failover to another variant, restarts that re-decide a service
and requeue the services that must follow it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stack.events import Replanned, Tick
from stack.states import OUTSIDE, ServiceState

if TYPE_CHECKING:
    from stack.supervisor import Supervisor

__all__ = ["Switching"]


class Switching:
    """Mixed into Supervisor (self is one); kept apart so each module reads on its own."""

    def _on_outside_probe(self: Supervisor, s: ServiceState, ok: bool, detail: str) -> None:
        """Liveness of what the stack adopted or was pointed at: when it stops answering,
        fail over to the next variant that fits (or start our own, if it has a command)."""
        probe = s.spec.probe
        assert probe is not None
        if ok and s.state == "lost":
            self._adopt(s)  # back before anything replaced it
            self._advance()
            return
        if ok:
            s.probe_failures, s.health = 0, "healthy"
        elif s.state != "lost":
            s.probe_failures += 1
            s.health = f"failing ({s.probe_failures}/{probe.failure_threshold}): {detail}"
            if s.probe_failures >= probe.failure_threshold:
                self._set(s.name, "lost", reason=f"stopped answering: {detail}", health="down")
                self.fx.replan(s.name, s.gen, "failover", True)
                return  # probing goes on if nothing can replace it
        self.fx.changed(s.name)
        self.fx.call_at(self.clock() + probe.liveness_interval, Tick(s.name, s.gen, "probe"))

    def _adopt(self: Supervisor, s: ServiceState) -> None:
        s.ready_at = self.clock()
        s.probe_failures = 0
        state = "adopted" if s.spec.command else "external"
        self._set(s.name, state, reason="", health="healthy")
        if s.spec.probe:
            when = self.clock() + s.spec.probe.liveness_interval
            self.fx.call_at(when, Tick(s.name, s.gen, "probe"))

    def _on_replanned(self: Supervisor, s: ServiceState, ev: Replanned) -> None:
        if self.phase not in ("starting", "up"):
            return
        if ev.specs is None or ev.same:
            if ev.mode == "restart":
                self._plain_restart(s)
            elif ev.mode == "port" and ev.same:
                self._take_new(s)  # free again: start where it was
            elif ev.mode == "port":  # no port to move to (the reason is in ev.note)
                self._not_ready(s, f"port {s.spec.port} is taken and {ev.note}")
            elif s.state == "lost" and s.spec.probe:  # nothing to fail over to: keep watching
                s.reason += f" ({ev.note or 'nothing else fits'})"
                self.fx.changed(s.name)
                when = self.clock() + s.spec.probe.liveness_interval
                self.fx.call_at(when, Tick(s.name, s.gen, "probe"))
            return
        for name, spec in ev.specs.items():
            self.svcs[name].spec = spec
        s.adopt_next = ev.adopted
        s.reason = ev.note
        for name in self.order:  # dependents first out, and back in order via _advance
            if name in ev.changed:
                self._requeue(self.svcs[name], f"{s.name} changed: {ev.note}")
        if s.has_process:
            self._stop_proc(s, "switch")
        else:
            self._take_new(s)

    def _plain_restart(self: Supervisor, s: ServiceState) -> None:
        s.restart_times.clear()  # a manual restart starts a fresh window
        if s.state in ("adopted", "external"):
            self._adopt(s)  # it answers (the replan checked): nothing to restart
        elif s.has_process:
            self._stop_proc(s, "restart")
        elif s.state not in ("pre-start", "pending"):
            s.gen += 1
            self._launch(s)

    def _take_new(self: Supervisor, s: ServiceState) -> None:
        """Start (or adopt) a service afresh with the spec it has now."""
        s.gen += 1
        s.restart_times.clear()
        self.fx.cancel(s.name)
        if s.adopt_next:
            s.adopt_next = False
            self._adopt(s)
        else:
            self._set(s.name, "pending")
        self._advance()

    def _requeue(self: Supervisor, s: ServiceState, why: str) -> None:
        """Back to pending (stopped first if running): it starts again once its
        dependencies are ready, with its new spec."""
        s.reason = why
        if s.state in OUTSIDE:
            return  # nothing of ours to restart
        if s.has_process:
            self._stop_proc(s, "requeue")
        elif s.state != "pending":
            s.gen += 1
            self.fx.cancel(s.name)
            self._set(s.name, "pending")

    # -- stopping ----------------------------------------------------------------------------
