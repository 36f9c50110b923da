"""The validated stack file as plain frozen dataclasses: what the supervisor runs on.

stack.config checks a stack file with pydantic and hands over these; the long-lived supervisor
process imports only this module, so it never loads pydantic (or yaml) at all. Field names
and defaults mirror stack.config's models (tests/stack/test_spec.py keeps them in step).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "AssistantSpec",
    "Dependency",
    "OllamaPull",
    "Probe",
    "Provision",
    "Restart",
    "Service",
    "StackConfig",
    "Task",
    "When",
    "dependency_order",
    "to_plain",
]


@dataclass(frozen=True)
class Probe:
    http: str | None = None
    tcp: bool | str | None = None
    command: str | None = None
    initial_delay: float = 0.0
    interval: float = 1.0
    liveness_interval: float = 10.0
    timeout: float = 2.0
    failure_threshold: int = 3
    start_timeout: float = 60.0

    @property
    def kind(self) -> str:
        return "http" if self.http else "tcp" if self.tcp else "command"


@dataclass(frozen=True)
class Dependency:
    condition: str = "started"  # started | healthy | completed_successfully


@dataclass(frozen=True)
class Restart:
    policy: str = "on-failure"  # no | on-failure | always
    backoff: float = 1.0
    max_backoff: float = 30.0
    max_restarts: int = 5
    window: float = 300.0


@dataclass(frozen=True)
class AssistantSpec:
    name: str
    model: str
    instructions: str = ""
    description: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OllamaPull:
    host: str
    model: str


@dataclass(frozen=True, kw_only=True)
class Provision:
    url: str
    api_key: str = ""
    assistants: list[AssistantSpec]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Provision:
        return cls(**{**d, "assistants": [AssistantSpec(**a) for a in d.get("assistants", [])]})


@dataclass(frozen=True)
class Task:
    name: str | None = None
    run: str | None = None
    ollama_pull: OllamaPull | None = None
    provision: Provision | None = None
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 600.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        pull, prov = d.get("ollama_pull"), d.get("provision")
        return cls(
            **{
                **d,
                "ollama_pull": OllamaPull(**pull) if pull else None,
                "provision": Provision.from_dict(prov) if prov else None,
            }
        )

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.run is not None:
            return self.run
        return "ollama pull" if self.ollama_pull else "provision"


@dataclass(frozen=True)
class When:
    installed: str | None = None
    env: str | None = None


@dataclass(frozen=True)
class Service:
    command: str | None = None
    cwd: str = "."
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int | None = None
    socket: str | None = None
    adopt: bool = False
    url: str | None = None
    probe: Probe | None = None
    depends_on: dict[str, Dependency] = field(default_factory=dict)
    restart: Restart = field(default_factory=Restart)
    stop_signal: str = "SIGTERM"
    stop_grace: float = 10.0
    pre_start: list[Task] = field(default_factory=list)
    post_healthy: list[Task] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    hint: str | None = None
    name: str | None = None
    when: When | None = None
    note: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Service:
        probe, restart, when = d.get("probe"), d.get("restart"), d.get("when")
        return cls(
            **{
                **d,
                "probe": Probe(**probe) if probe else None,
                "restart": Restart(**restart) if restart else Restart(),
                "depends_on": {k: Dependency(**v) for k, v in d.get("depends_on", {}).items()},
                "pre_start": [Task.from_dict(t) for t in d.get("pre_start", [])],
                "post_healthy": [Task.from_dict(t) for t in d.get("post_healthy", [])],
                "when": When(**when) if when else None,
            }
        )


@dataclass(frozen=True)
class StackConfig:
    path: Path
    services: dict[str, Service]
    env: dict[str, str] = field(default_factory=dict)  # the environment children get
    variants: dict[str, list[Service]] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.path.parent

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "env": self.env,
            "services": {n: to_plain(s) for n, s in self.services.items()},
            "variants": {n: [to_plain(v) for v in vs] for n, vs in self.variants.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StackConfig:
        return cls(
            path=Path(d["path"]),
            env=d["env"],
            services={n: Service.from_dict(s) for n, s in d["services"].items()},
            variants={n: [Service.from_dict(v) for v in vs] for n, vs in d["variants"].items()},
        )


def to_plain(obj: Any, drop_defaults: bool = False) -> Any:
    """Dataclasses as dicts (lists stay lists), e.g. for JSON, YAML or interpolation; with
    drop_defaults, fields left at their default are left out."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if drop_defaults and value == _default(f):
                continue
            out[f.name] = to_plain(value, drop_defaults)
        return out
    if isinstance(obj, list | tuple):
        return [to_plain(v, drop_defaults) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v, drop_defaults) for k, v in obj.items()}
    return obj


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def dependency_order(deps: dict[str, list[str]]) -> tuple[list[str], list[list[str]]]:
    """Topological order (dependencies first, declaration order kept) and the cycles found."""
    order: list[str] = []
    mark: dict[str, int] = {}  # 1 visiting, 2 done
    cycles: list[list[str]] = []

    def visit(name: str, stack: list[str]) -> None:
        if mark.get(name) == 2:
            return
        if mark.get(name) == 1:
            cycles.append([*stack[stack.index(name) :], name])
            return
        mark[name] = 1
        for dep in deps.get(name, []):
            if dep in deps:
                visit(dep, [*stack, name])
        mark[name] = 2
        order.append(name)

    for name in deps:
        visit(name, [])
    return order, cycles
