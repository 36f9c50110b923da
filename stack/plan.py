"""From a validated config to what will actually run: the chosen variant of each service (e.g.
Ollama or the embedded runtime), resolved ports, and every `${services.…}` filled in."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stack.health import ProbeTarget, check
from stack.interpolate import InterpolationError, interpolate_refs, walk_strings
from stack.ports import PortPlan, PortRequest, resolve_ports
from stack.spec import Service, StackConfig, dependency_order, to_plain

__all__ = [
    "Choice",
    "ExternalDown",
    "Plan",
    "Replan",
    "choose_variant",
    "choose_variants",
    "make_plan",
    "preferred_answers",
    "replan",
]


@dataclass(frozen=True)
class Choice:
    variant: str
    note: str  # said plainly in the output: what was chosen and why
    index: int = 0  # its place among the service's variants (0: the preferred one)


@dataclass
class Plan:
    services: dict[str, Service]  # fully resolved
    ports: dict[str, PortPlan] = field(default_factory=dict)
    choices: dict[str, Choice] = field(default_factory=dict)
    # the chosen services before `${services.…}`/`${self.…}` were filled in, to resolve again
    # when one of them changes variant or port
    raw: dict[str, Service] = field(default_factory=dict)

    @property
    def adopted(self) -> frozenset[str]:
        """Services the stack does not start: adopted on their port, or external (no command)."""
        external = {n for n, s in self.services.items() if s.command is None}
        return frozenset(n for n, p in self.ports.items() if p.adopted) | external

    def close_sockets(self) -> None:
        for p in self.ports.values():
            if p.sock is not None:
                p.sock.close()
                p.sock = None

    def apply(self, r: Replan, deps: bool = True) -> None:
        """Take a replan: the service's new variant/port, and (with deps) its dependents'
        new resolved specs. The old listening socket is closed (a running process keeps its
        own copy until it exits)."""
        old = self.ports.get(r.name)
        if old is not None and old is not r.port and old.sock is not None:
            old.sock.close()
            old.sock = None
        self.raw[r.name] = r.raw
        if r.port is None:
            self.ports.pop(r.name, None)
        else:
            self.ports[r.name] = r.port
        if r.choice is not None:
            self.choices[r.name] = r.choice
        self.services[r.name] = r.services[r.name]
        for n in r.updated if deps else ():
            self.services[n] = r.services[n]


Answers = Callable[[Service, int | None], Awaitable[bool]]


def on_path(exe: str) -> bool:
    return shutil.which(exe) is not None


async def probe_answers(svc: Service, port: int | None) -> bool:
    """Whether something on `port` passes the service's own probe (to adopt it, or to check
    that an external service is up)."""
    if svc.probe is None:
        return False
    url = svc.url or f"http://{svc.host}:{port}"
    return (await check(ProbeTarget(svc.probe, svc.host, port, url)))[0]


async def choose_variant(
    name: str,
    variants: list[Service],
    env: dict[str, str],
    installed: Callable[[str], bool] = on_path,
    answers: Answers = probe_answers,
    start: int = 0,
    externals_must_answer: bool = False,
) -> tuple[Service, Choice] | None:
    """The first variant from `start` whose `when` holds (installed, or already answering
    where it may be adopted); a variant without `when` always holds. None: none fits."""
    missed: list[str] = []
    for index, var in enumerate(variants[start:], start):
        running = bool(var.adopt and var.port and await answers(var, var.port))
        when = var.when
        holds = when is None or (
            installed(when.installed) if when.installed else bool(env.get(when.env or ""))
        )
        if holds and externals_must_answer and var.command is None and not running:
            holds = await probe_answers(var, var.port)
            if not holds:
                missed.append(f"{var.name}, {var.url} does not answer")
                continue
        if running or holds:
            note = f"{name}: {var.name}" + (" (already running, adopted)" if running else "")
            if var.note:
                note += f" - {var.note}"
            if missed:
                note += f" [not used: {'; '.join(missed)}]"
            return var, Choice(var.name or "", note, index)
        where = f" and nothing answers on {var.host}:{var.port}" if var.adopt else ""
        assert when is not None
        why = f"`{when.installed}` is not installed" if when.installed else f"{when.env} is not set"
        missed.append(f"{var.name}, {why}{where}")
    if start == 0:
        raise InterpolationError(f"{name}: no variant fits ({'; '.join(missed)})")
    return None


async def choose_variants(
    cfg: StackConfig,
    installed: Callable[[str], bool] = on_path,
    answers: Answers = probe_answers,
) -> tuple[dict[str, Service], dict[str, Choice]]:
    """Each service with variants gets its first variant that fits."""
    services = dict(cfg.services)
    choices: dict[str, Choice] = {}
    for name, variants in cfg.variants.items():
        found = await choose_variant(name, variants, cfg.env, installed, answers)
        assert found is not None  # start 0: raises when nothing fits
        services[name], choices[name] = found
    return services, choices


def _base_values(svc: Service, port: PortPlan | None) -> dict[str, str]:
    host = svc.host
    p = port.port if port else svc.port
    values = {"host": host, "port": str(p or "")}
    values["url"] = f"http://{host}:{p}" if p else ""
    if port and port.sock is not None:
        values["fd"] = str(port.sock.fileno())
    return values


def resolve_refs(services: dict[str, Service], ports: dict[str, PortPlan]) -> dict[str, Service]:
    """Fill in `${services.X.…}` and `${self.…}` everywhere (urls, then vars, then the rest)."""
    values = {n: _base_values(s, ports.get(n)) for n, s in services.items()}
    var_values: dict[str, dict[str, str]] = {}

    def lookup_for(me: str) -> Callable[[tuple[str, ...]], str]:
        def lookup(ref: tuple[str, ...]) -> str:
            name, rest = (me, ref[1:]) if ref[0] == "self" else (ref[1], ref[2:])
            if rest[0] == "vars":
                if name not in var_values:
                    raise InterpolationError(f"${{{'.'.join(ref)}}}: vars may not refer to vars")
                return var_values[name][rest[1]]
            return values[name][rest[0]]

        return lookup

    for name, svc in services.items():
        if svc.url:
            values[name]["url"] = interpolate_refs(svc.url, lookup_for(name))
    for name, svc in services.items():
        look = lookup_for(name)
        var_values[name] = {k: interpolate_refs(v, look) for k, v in svc.vars.items()}
    out = {}
    for name, svc in services.items():
        look = lookup_for(name)
        data: dict[str, Any] = walk_strings(
            to_plain(svc), lambda v, _p, look=look: interpolate_refs(v, look)
        )
        data["url"] = values[name]["url"] or None
        if ports.get(name):
            data["port"] = ports[name].port
        data["vars"] = var_values[name]
        out[name] = Service.from_dict(data)
    return out


async def make_plan(
    cfg: StackConfig, installed: Callable[[str], bool] = on_path, answers: Answers = probe_answers
) -> Plan:
    """Choose variants, resolve ports (binding sockets for `socket: inherit`), fill in refs."""
    services, choices = await choose_variants(cfg, installed, answers)
    order = dependency_order({n: list(s.depends_on) for n, s in services.items()})[0]
    requests = [_port_request(n, services[n]) for n in order if _needs_port(services[n])]

    async def answers_by_name(name: str, port: int) -> bool:
        return await answers(services[name], port)

    ports = await resolve_ports(requests, answers_by_name)
    try:
        resolved = resolve_refs(services, ports)
        for name, svc in resolved.items():
            # an external service must already answer: there is nothing to start
            if svc.command is None and svc.probe and not await probe_answers(svc, svc.port):
                raise ExternalDown(
                    f"{name}: nothing to start, and {svc.url} does not answer its probe"
                )
    except BaseException:
        Plan(services, ports).close_sockets()
        raise
    return Plan(resolved, ports, choices, services)


def _needs_port(svc: Service) -> bool:
    return bool(svc.port) and svc.command is not None


def _port_request(name: str, svc: Service) -> PortRequest:
    return PortRequest(name, svc.host, svc.port or 0, svc.adopt, bool(svc.socket))


@dataclass
class Replan:
    """What a service becomes after a failover, a restart or a move, and what follows."""

    name: str
    raw: Service
    port: PortPlan | None
    choice: Choice | None
    services: dict[str, Service]  # every service resolved again
    changed: list[str]  # other services that must restart to follow (new command or env)
    updated: list[str]  # other services whose resolved spec differs at all
    same: bool  # nothing changes: a plain restart

    @property
    def adopted(self) -> bool:
        return bool(self.port and self.port.adopted) or self.raw.command is None


async def replan(
    cfg: StackConfig,
    plan: Plan,
    name: str,
    mode: str,
    installed: Callable[[str], bool] = on_path,
    answers: Answers = probe_answers,
) -> Replan | None:
    """Decide again what `name` runs as. mode "failover": the next variant after the current
    one that fits (an external one must answer); "restart": from the preferred variant on;
    "port": the same variant on a port that is free now. None when nothing fits."""
    current, choice = plan.raw[name], plan.choices.get(name)
    variants = cfg.variants.get(name)
    svc: Service = current
    if variants and mode != "port":
        start = (choice.index + 1) if mode == "failover" and choice else 0
        found = await choose_variant(
            name, variants, cfg.env, installed, answers, start, externals_must_answer=True
        )
        if found is None:
            return None
        svc, choice = found
    old_port = plan.ports.get(name)
    if mode == "failover" and not variants and not (old_port and old_port.adopted):
        return None  # external (or ours and failed) with nothing to fall back to
    port: PortPlan | None = None
    same_variant = svc is current
    if _needs_port(svc):
        keep = old_port is not None and not old_port.adopted and mode == "restart"
        if same_variant and keep:
            port = old_port  # our own process on it: a plain restart
        else:
            avoid = {p.port for n, p in plan.ports.items() if n != name}
            request = [_port_request(name, svc)]
            port = (await resolve_ports(request, _by_name(svc, answers), avoid=avoid))[name]
    same = same_variant and (
        (port is None and old_port is None)
        or (
            port is not None
            and old_port is not None
            and (port.port, port.adopted) == (old_port.port, old_port.adopted)
        )
    )
    if same and port is not old_port and port is not None and port.sock is not None:
        port.sock.close()
        port = old_port
    ports = {n: p for n, p in plan.ports.items() if n != name}
    if port is not None:
        ports[name] = port
    try:
        resolved = resolve_refs({**plan.raw, name: svc}, ports)
    except BaseException:
        if port is not None and port is not old_port and port.sock is not None:
            port.sock.close()
        raise
    updated = [n for n, s in resolved.items() if n != name and s != plan.services.get(n)]
    changed = [n for n in updated if _runs_differently(resolved[n], plan.services[n])]
    return Replan(name, svc, port, choice, resolved, changed, updated, same and not changed)


# what only matters when a service is started, not to the process while it runs
_NOT_RUNTIME = {"pre_start", "post_healthy", "vars", "note", "hint", "name", "when"}
_RUNTIME_FIELDS = [f for f in Service.__dataclass_fields__ if f not in _NOT_RUNTIME]


def _runs_differently(a: Service, b: Service) -> bool:
    """Whether the running process must be restarted to follow the change (a new URL in its
    command or environment); new provisioning values alone wait for its next start."""
    return any(getattr(a, f) != getattr(b, f) for f in _RUNTIME_FIELDS)


def _by_name(svc: Service, answers: Answers) -> Callable[[str, int], Awaitable[bool]]:
    async def answers_by_name(_name: str, port: int) -> bool:
        return await answers(svc, port)

    return answers_by_name


class ExternalDown(Exception):
    """An external service (no command) that does not answer."""


async def preferred_answers(cfg: StackConfig, plan: Plan, name: str) -> str | None:
    """While `name` runs on a fallback: the name of a preferred variant that answers again
    (an Ollama to adopt, an external server), for `stack restart` to switch back to."""
    choice = plan.choices.get(name)
    for var in cfg.variants.get(name, [])[: choice.index if choice else 0]:
        external = var.command is None and bool(var.when and cfg.env.get(var.when.env or ""))
        if ((var.adopt and var.port) or external) and await probe_answers(var, var.port):
            return var.name
    return None
