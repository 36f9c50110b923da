"""stack.yaml: the schema, the loader (.env, interpolation) and the validators that report
every problem at once, each with its field path."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from stack import spec as plain
from stack.errors import ConfigError
from stack.interpolate import InterpolationError, find_references, interpolate_env, walk_strings
from stack.spec import StackConfig, dependency_order

__all__ = ["ConfigError", "Probe", "Service", "StackConfig", "Task", "dependency_order", "load"]

SERVICE_ATTRS = {"host", "port", "url"}

# These models use no pydantic plugins: pydantic's documented switch spares every `stack up`
# its scan of all installed entry points (~10 ms) while the models below are built. It is
# restored after them, so the environment the services inherit is untouched.
_PLUGINS_VAR = "PYDANTIC_DISABLE_PLUGINS"
_plugins_setting = os.environ.get(_PLUGINS_VAR)
os.environ[_PLUGINS_VAR] = "__all__"


def _to_str(value: Any) -> Any:
    # YAML turns `8080` and `true` into numbers and booleans; environments only hold strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


Str = Annotated[str, BeforeValidator(_to_str)]


def _restart_policy(value: Any) -> Any:
    # YAML 1.1 reads a bare `no` as False.
    if value is False:
        return {"policy": "no"}
    if isinstance(value, str):
        return {"policy": value}
    return value


def _signal_name(value: Any) -> Any:
    if isinstance(value, str):
        name = value.upper() if value.upper().startswith("SIG") else "SIG" + value.upper()
        if not hasattr(signal, name):
            raise ValueError(f"unknown signal {value!r}")
        return name
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Probe(Strict):
    """How to tell that a service is up: exactly one of http, tcp, command. While starting it
    is tried every `interval` until it passes or `start_timeout` runs out; once healthy, every
    `liveness_interval`, and `failure_threshold` failures in a row restart the service."""

    http: str | None = None  # a path on the service URL ("/health") or a full URL
    tcp: bool | str | None = None  # true: the service's host:port; or "host:port"
    command: str | None = None  # exit code 0 means healthy
    initial_delay: float = Field(0.0, ge=0)
    interval: float = Field(1.0, gt=0)
    liveness_interval: float = Field(10.0, gt=0)
    timeout: float = Field(2.0, gt=0)
    failure_threshold: int = Field(3, ge=1)
    start_timeout: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Probe:
        kinds = [k for k in ("http", "tcp", "command") if getattr(self, k) not in (None, False)]
        if len(kinds) != 1:
            raise ValueError("a probe needs exactly one of http, tcp, command")
        return self

    @property
    def kind(self) -> str:
        return "http" if self.http else "tcp" if self.tcp else "command"


class Dependency(Strict):
    condition: Literal["started", "healthy", "completed_successfully"] = "started"


class Restart(Strict):
    policy: Literal["no", "on-failure", "always"] = "on-failure"
    backoff: float = Field(1.0, gt=0)  # first delay; doubles with each restart in the window
    max_backoff: float = Field(30.0, gt=0)
    max_restarts: int = Field(5, ge=0)  # more than this many restarts within `window` → failed
    window: float = Field(300.0, gt=0)


class AssistantSpec(Strict):
    name: str
    model: str
    instructions: str = ""
    description: str | None = None
    tools: list[dict[str, Any]] = []
    metadata: dict[str, str] = {}


class OllamaPull(Strict):
    host: str
    model: str


class Provision(Strict):
    url: str
    api_key: Str = ""
    assistants: list[AssistantSpec]


class Task(Strict):
    """A one-shot step before start or after healthy: a command or a built-in action."""

    name: str | None = None
    run: str | None = None
    ollama_pull: OllamaPull | None = None
    provision: Provision | None = None
    cwd: str | None = None
    env: dict[str, Str] = {}
    timeout: float = Field(600.0, gt=0)

    @model_validator(mode="after")
    def _one_action(self) -> Task:
        if sum(x is not None for x in (self.run, self.ollama_pull, self.provision)) != 1:
            raise ValueError("a task needs exactly one of run, ollama_pull, provision")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.run is not None:
            return self.run
        return "ollama pull" if self.ollama_pull else "provision"


class When(Strict):
    """When a variant is chosen: an executable is on PATH, or a variable is set and not empty.
    A variant that may adopt is also chosen when its port already answers its probe."""

    installed: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one(self) -> When:
        if (self.installed is None) == (self.env is None):
            raise ValueError("`when` needs exactly one of installed, env")
        return self


class Service(Strict):
    # None: an external service, nothing to start; it needs a url (and is checked by its probe)
    command: str | None = None
    cwd: str = "."
    env: dict[str, Str] = {}
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)
    socket: Literal["inherit"] | None = None  # bind here, pass the fd as ${self.fd}
    adopt: bool = False
    url: str | None = None
    probe: Probe | None = None
    depends_on: dict[str, Dependency] = {}
    restart: Annotated[Restart, BeforeValidator(_restart_policy)] = Restart()
    stop_signal: Annotated[str, BeforeValidator(_signal_name)] = "SIGTERM"
    stop_grace: float = Field(10.0, ge=0)
    pre_start: list[Task] = []
    post_healthy: list[Task] = []
    vars: dict[str, Str] = {}
    hint: str | None = None  # what to do when it fails to start, said in the report
    # only inside `variants:`
    name: str | None = None
    when: When | None = None
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _depends_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("depends_on"), list):
            data = {**data, "depends_on": {d: {} for d in data["depends_on"]}}
        return data


class ServiceEntry(Service):
    variants: list[dict[str, Any]] = []


if _plugins_setting is None:
    del os.environ[_PLUGINS_VAR]
else:
    os.environ[_PLUGINS_VAR] = _plugins_setting


def _fmt(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(err: ValidationError, prefix: tuple[Any, ...]) -> list[tuple[str, str]]:
    out = []
    for e in err.errors():
        # drop pydantic's union/validator tags like "function-before[...]" from the path
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append((_fmt((*prefix, *loc)), msg))
    return out


def _raw_deps(raw_services: dict[Any, Any]) -> dict[str, list[str]]:
    """depends_on read leniently from the raw file, so that a service that failed the schema
    still takes part in the dependency checks."""
    deps: dict[str, list[str]] = {}
    for name, body in raw_services.items():
        d = body.get("depends_on") if isinstance(body, dict) else None
        deps[str(name)] = [str(x) for x in d] if isinstance(d, list | dict) else []
    return deps


def _check_semantics(
    services: dict[str, Service], variants: dict[str, list[Service]], raw_deps: dict[str, list[str]]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name, deps in raw_deps.items():
        if name not in services:  # failed the schema: still say what is wrong with depends_on
            problems += [
                (_fmt(("services", name, "depends_on", d)), f"unknown service {d!r}")
                for d in deps
                if d not in raw_deps
            ]
    # with variants, the service's own fields are only a template: check each variant (a
    # `healthy` dependency needs a probe on every one of them)
    all_forms = {n: variants.get(n) or [s] for n, s in services.items()}
    for name, forms in all_forms.items():
        for i, svc in enumerate(forms):
            base = ("services", name, "variants", i) if name in variants else ("services", name)
            for dep, spec in svc.depends_on.items():
                p = _fmt((*base, "depends_on", dep))
                if dep not in raw_deps:
                    problems.append((p, f"unknown service {dep!r}"))
                elif (
                    dep in services
                    and spec.condition == "healthy"
                    and any(f.probe is None for f in all_forms[dep])
                ):
                    problems.append((p + ".condition", f"'healthy' needs a probe on {dep!r}"))
            if svc.command is None and not (svc.adopt or svc.url is not None):
                problems.append(
                    (_fmt((*base, "command")), "a command is required (or a url, if external)")
                )
            if svc.adopt and svc.probe is None:
                problems.append((_fmt((*base, "adopt")), "adopting needs a probe to check with"))
            if svc.socket and svc.port is None:
                problems.append((_fmt((*base, "socket")), "socket: inherit needs a port"))
            if svc.socket and svc.probe and svc.probe.tcp is True:
                # the stack holds the listening socket, so connections succeed before the
                # service even runs
                problems.append(
                    (
                        _fmt((*base, "probe", "tcp")),
                        "with socket: inherit use an http or command probe",
                    )
                )
            if svc.probe and svc.port is None and svc.url is None and svc.probe.kind != "command":  # noqa: SIM102
                if svc.probe.tcp is True or (svc.probe.http or "").startswith("/"):
                    problems.append((_fmt((*base, "probe")), "this probe needs the service's port"))
            problems += _check_refs(svc, base, set(raw_deps))
    deps = {n: list(s.depends_on) for n, s in services.items()}
    deps = {n: deps.get(n, raw) for n, raw in raw_deps.items()}
    for n, vs in variants.items():
        deps[n] = sorted({d for v in vs for d in v.depends_on} | set(deps[n]))
    for cycle in dependency_order(deps)[1]:
        problems.append(
            (_fmt(("services", cycle[0], "depends_on")), "dependency cycle " + " -> ".join(cycle))
        )
    return problems


def _check_refs(svc: Service, base: tuple[Any, ...], names: set[str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []

    def check(value: str, path: tuple[Any, ...]) -> str:
        for ref in find_references(value):
            p, expr = _fmt((*base, *path)), "${" + ".".join(ref) + "}"
            if ref[0] == "self":
                attrs = SERVICE_ATTRS | {"fd"}
                if len(ref) != 2 or ref[1] not in attrs:
                    problems.append((p, f"{expr}: use self.host, self.port, self.url or self.fd"))
                elif ref[1] == "fd" and svc.socket != "inherit":
                    problems.append((p, f"{expr} needs `socket: inherit`"))
            elif len(ref) < 3 or ref[1] not in names:
                problems.append((p, f"{expr}: unknown service"))
            elif not (
                (len(ref) == 3 and ref[2] in SERVICE_ATTRS) or (len(ref) == 4 and ref[2] == "vars")
            ):
                problems.append((p, f"{expr}: use .host, .port, .url or .vars.NAME"))
        return value

    walk_strings(svc.model_dump(exclude={"variants"}), check)
    return problems


def read_env_file(path: Path) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}


def load(path: str | Path, environ: dict[str, str] | None = None) -> StackConfig:
    """Read, interpolate and validate a stack file; raise ConfigError listing every problem."""
    path = Path(path).resolve()
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        why = f"{path.name} is not UTF-8 text (byte {exc.start}: {exc.reason})"
        raise ConfigError([("", why)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([("", f"{path.name} is not valid YAML: {exc}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError([("", "the stack file must be a mapping with a `services:` key")])
    # the process environment wins over .env, as with docker compose
    env = {**read_env_file(path.parent / ".env"), **(os.environ if environ is None else environ)}
    stack_vals = {"dir": str(path.parent), "python": sys.executable}
    problems: list[tuple[str, str]] = []

    def expand(value: str, p: tuple[Any, ...]) -> str:
        try:
            return interpolate_env(value, env, stack_vals)
        except InterpolationError as exc:
            problems.append((_fmt(p), str(exc)))
            return value

    raw = walk_strings(raw, expand)
    unknown = set(raw) - {"services", "version"}
    problems += [(str(k), "unknown key") for k in sorted(unknown, key=str)]
    raw_services = raw.get("services")
    if not isinstance(raw_services, dict) or not raw_services:
        raise ConfigError([*problems, ("services", "at least one service is required")])

    services: dict[str, Service] = {}
    variants: dict[str, list[Service]] = {}
    for name, body in raw_services.items():
        prefix = ("services", name)
        try:
            entry = ServiceEntry.model_validate(body)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, prefix)
            continue
        services[name] = Service.model_validate(entry.model_dump(exclude={"variants"}))
        base = entry.model_dump(exclude_unset=True, exclude={"variants"})
        for i, var in enumerate(entry.variants):
            try:
                variants.setdefault(name, []).append(Service.model_validate({**base, **var}))
            except ValidationError as exc:
                problems += _pydantic_problems(exc, (*prefix, "variants", i))
            if "name" not in var:
                problems.append((_fmt((*prefix, "variants", i, "name")), "a variant needs a name"))
    problems += _check_semantics(services, variants, _raw_deps(raw_services))
    if problems:
        raise ConfigError(problems)
    # checked: from here on the stack runs on plain dataclasses (see stack.spec)
    return StackConfig(
        path=path,
        env=env,
        services={n: plain.Service.from_dict(s.model_dump()) for n, s in services.items()},
        variants={
            n: [plain.Service.from_dict(v.model_dump()) for v in vs] for n, vs in variants.items()
        },
    )
