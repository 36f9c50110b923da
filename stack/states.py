"""What the supervisor knows of each service and of a failure, and what it asks of the OS
(`Effects`): the types its decisions work on."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Literal, Protocol

from stack.events import Event
from stack.spec import Service

__all__ = [
    "DEAD_END",
    "OUTSIDE",
    "READY",
    "STARTED",
    "Effects",
    "Failure",
    "ServiceState",
    "StopWhy",
    "describe_exit",
    "failure_hint",
]

READY = {"healthy", "running", "completed", "adopted", "external"}
OUTSIDE = {"adopted", "external", "lost"}  # not run by the stack: watched by probes only
STARTED = READY | {"starting", "post-start"}
DEAD_END = {"failed", "skipped", "stopped", "exited"}


class Effects(Protocol):
    def spawn(self, name: str, gen: int) -> None: ...
    def signal(self, name: str, sig: str) -> None: ...  # a name ("SIGTERM"): procs maps it
    def probe(self, name: str, gen: int) -> None: ...
    def run_task(self, name: str, gen: int, phase: str, index: int) -> None: ...
    def cancel(self, name: str) -> None: ...
    def replan(self, name: str, gen: int, mode: str, deps: bool) -> None: ...
    def call_at(self, when: float, event: Event) -> None: ...
    def changed(self, name: str) -> None: ...
    def up_ready(self) -> None: ...
    def finished(self, failure: Failure | None) -> None: ...


@dataclass(frozen=True)
class Failure:
    name: str
    why: str


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def failure_hint(failure: Failure, hint: str | None = None) -> str:
    """What to do about a failed `stack up`, from how it failed (and the service's own hint)."""
    name, why = failure.name, failure.why
    logs = f"`stack logs {name}` has its whole log"
    if "killed by SIG" in why and "SIGTERM" not in why and "SIGKILL" not in why:
        text = (
            f"{name} crashed: a fault in the program or in a native library it loads, not in"
            f" the stack file; {logs}"
        )
    elif "not healthy after" in why:
        text = f"it started but never passed its probe: {logs}; if it is only slow, raise"
        text += " probe.start_timeout"
    elif "exited with code" in why or "could not start" in why:
        text = f"{logs}; fix what it says and run `stack up` again"
    else:
        text = logs
    return f"{text}. {hint}" if hint else text


StopWhy = Literal["down", "restart", "liveness", "switch", "requeue"]


@dataclass
class ServiceState:
    name: str
    spec: Service
    state: str = "pending"
    gen: int = 0
    pid: int | None = None
    spawning: bool = False
    started_at: float | None = None
    ready_at: float | None = None
    restarts: int = 0
    restart_times: list[float] = field(default_factory=list)
    last_exit: str | None = None
    health: str = "unknown"
    last_probe: str = ""
    probe_failures: int = 0
    reason: str = ""  # why the service is in its state, for status and failure reports
    stopping_for: StopWhy | None = None
    adopt_next: bool = False  # after a switch: adopt what answers instead of starting it

    @property
    def has_process(self) -> bool:
        return self.pid is not None or self.spawning
