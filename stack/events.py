"""The supervisor's events: frozen dataclasses posted on one queue and consumed by one loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "Event",
    "Exited",
    "PortTaken",
    "ProbeDone",
    "Replanned",
    "RestartRequested",
    "SpawnFailed",
    "Spawned",
    "StopRequested",
    "TaskDone",
    "Tick",
]


@dataclass(frozen=True)
class Spawned:
    name: str
    gen: int
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    name: str
    gen: int
    error: str


@dataclass(frozen=True)
class Exited:
    name: str
    gen: int
    code: int  # negative: killed by that signal, as in subprocess


@dataclass(frozen=True)
class ProbeDone:
    name: str
    gen: int
    ok: bool
    detail: str


@dataclass(frozen=True)
class TaskDone:
    name: str
    gen: int
    phase: Literal["pre_start", "post_healthy"]
    index: int
    ok: bool
    detail: str


@dataclass(frozen=True)
class Tick:
    """A timer set by the supervisor itself; `gen` makes stale timers harmless."""

    name: str
    gen: int
    what: Literal["probe", "start_timeout", "restart", "kill"]


@dataclass(frozen=True)
class StopRequested:
    reason: str


@dataclass(frozen=True)
class RestartRequested:
    name: str
    deps: bool = True  # also restart the services that must follow (new URL, new variant)


@dataclass(frozen=True)
class PortTaken:
    """A service that binds its own port found it taken when it was to start again."""

    name: str
    gen: int


@dataclass(frozen=True)
class Replanned:
    """What a service runs as now (after a failover, a restart or a move). `specs` holds its
    new resolved spec and those of the services that must restart with it (`changed`);
    None: nothing else fits, or nothing changes (`same`)."""

    name: str
    gen: int
    mode: Literal["failover", "restart", "port"]
    specs: dict[str, Any] | None = None
    changed: tuple[str, ...] = ()
    adopted: bool = False
    same: bool = False
    note: str = ""


Event = (
    Spawned
    | SpawnFailed
    | Exited
    | ProbeDone
    | TaskDone
    | Tick
    | StopRequested
    | RestartRequested
    | PortTaken
    | Replanned
)
