"""The supervisor's events: frozen dataclasses posted on one queue and consumed by one loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Event",
    "Exited",
    "ProbeDone",
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


Event = (
    Spawned | SpawnFailed | Exited | ProbeDone | TaskDone | Tick | StopRequested | RestartRequested
)
