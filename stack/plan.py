"""From a validated config to what will actually run: the chosen variant of each service (e.g.
Ollama or the embedded runtime), resolved ports, and every `${services.…}` filled in."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stack.config import Service, StackConfig, dependency_order
from stack.health import ProbeTarget, check
from stack.interpolate import InterpolationError, interpolate_refs, walk_strings
from stack.ports import PortPlan, PortRequest, resolve_ports

__all__ = ["Choice", "ExternalDown", "Plan", "choose_variants", "make_plan"]


@dataclass(frozen=True)
class Choice:
    variant: str
    note: str  # said plainly in the output: what was chosen and why


@dataclass
class Plan:
    services: dict[str, Service]  # fully resolved
    ports: dict[str, PortPlan] = field(default_factory=dict)
    choices: dict[str, Choice] = field(default_factory=dict)

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


async def choose_variants(
    cfg: StackConfig,
    installed: Callable[[str], bool] = on_path,
    answers: Answers = probe_answers,
) -> tuple[dict[str, Service], dict[str, Choice]]:
    """The first variant whose `when` holds (installed, or already answering where it may be
    adopted); a variant without `when` always holds."""
    env = cfg.env
    services = dict(cfg.services)
    choices: dict[str, Choice] = {}
    for name, variants in cfg.variants.items():
        missed: list[str] = []
        for var in variants:
            running = bool(var.adopt and var.port and await answers(var, var.port))
            when = var.when
            holds = when is None or (
                installed(when.installed) if when.installed else bool(env.get(when.env or ""))
            )
            if running or holds:
                note = f"{name}: {var.name}" + (" (already running, adopted)" if running else "")
                if var.note:
                    note += f" - {var.note}"
                if missed:
                    note += f" [not used: {'; '.join(missed)}]"
                services[name] = var
                choices[name] = Choice(var.name or "", note)
                break
            where = f" and nothing answers on {var.host}:{var.port}" if var.adopt else ""
            assert when is not None
            why = (
                f"`{when.installed}` is not installed"
                if when.installed
                else f"{when.env} is not set"
            )
            missed.append(f"{var.name}, {why}{where}")
        else:
            raise InterpolationError(f"{name}: no variant fits ({'; '.join(missed)})")
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
            svc.model_dump(exclude_unset=True), lambda v, _p, look=look: interpolate_refs(v, look)
        )
        data["url"] = values[name]["url"] or None
        if ports.get(name):
            data["port"] = ports[name].port
        data["vars"] = var_values[name]
        out[name] = Service.model_validate(data)
    return out


async def make_plan(
    cfg: StackConfig, installed: Callable[[str], bool] = on_path, answers: Answers = probe_answers
) -> Plan:
    """Choose variants, resolve ports (binding sockets for `socket: inherit`), fill in refs."""
    services, choices = await choose_variants(cfg, installed, answers)
    order = dependency_order({n: list(s.depends_on) for n, s in services.items()})[0]
    requests = [
        PortRequest(
            n, services[n].host, services[n].port or 0, services[n].adopt, bool(services[n].socket)
        )
        for n in order
        if services[n].port and services[n].command is not None
    ]

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
    return Plan(resolved, ports, choices)


class ExternalDown(Exception):
    """An external service (no command) that does not answer."""
