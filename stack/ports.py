"""Port resolution before anything starts: keep the asked port, adopt what answers on it, or
move to the next free one. Sockets for services that take an fd are bound here and kept."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PortPlan",
    "PortsExhausted",
    "bind_listener",
    "describe_holder",
    "port_holder",
    "port_is_free",
    "resolve_ports",
]

SEARCH_SPAN = 100  # how far past the asked port we look before giving up


class PortsExhausted(Exception):
    """No free port in the search span."""


@dataclass
class PortPlan:
    asked: int
    port: int
    adopted: bool = False
    sock: socket.socket | None = field(default=None, repr=False)
    holder: dict[str, Any] | None = None  # who had the asked port: pid, cmdline, what

    @property
    def moved(self) -> bool:
        return self.port != self.asked


def bind_listener(host: str, port: int) -> socket.socket | None:
    """A listening, inheritable socket on host:port, or None when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # REUSEADDR so that a port left in TIME_WAIT by a previous run counts as free (as uvicorn does)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        raise
    sock.set_inheritable(True)
    return sock


def port_is_free(host: str, port: int) -> bool:
    sock = bind_listener(host, port)
    if sock is None:
        return False
    sock.close()
    return True


@dataclass(frozen=True)
class PortRequest:
    name: str
    host: str
    port: int
    adopt: bool  # allowed to adopt what answers on the port
    keep_socket: bool  # the service takes an fd: bind now, pass it on


async def resolve_ports(
    requests: list[PortRequest],
    answers: Callable[[str, int], Awaitable[bool]],
    bind: Callable[[str, int], socket.socket | None] = bind_listener,
    avoid: set[int] | None = None,
) -> dict[str, PortPlan]:
    """Decide each service's port in order; no two services of the stack get the same one.

    A service that may adopt and whose asked port answers its probe is adopted (nothing is
    started for it); otherwise the first port from the asked one on that can be bound is used.
    """
    plans: dict[str, PortPlan] = {}
    taken: set[int] = set(avoid or ())  # ports other services of the stack already have
    try:
        for req in requests:
            sock = bind(req.host, req.port) if req.port not in taken else None
            adoptable = sock is None and req.port not in taken and req.adopt
            held = sock is None and req.port not in taken  # by someone outside the stack
            holder = port_holder(req.host, req.port) if held else None
            if adoptable and await answers(req.name, req.port):
                plans[req.name] = PortPlan(req.port, req.port, adopted=True, holder=holder)
                taken.add(req.port)
                continue
            port = req.port
            while sock is None:
                port += 1
                if port > min(req.port + SEARCH_SPAN, 65535):
                    raise PortsExhausted(
                        f"{req.name}: no free port in {req.port}..{port - 1} on {req.host}"
                    )
                if port not in taken:
                    sock = bind(req.host, port)
            if not req.keep_socket:
                # the service binds it itself; the window between here and its bind is the
                # race that `socket: inherit` avoids
                sock.close()
                sock = None
            plans[req.name] = PortPlan(req.port, port, sock=sock, holder=holder)
            taken.add(port)
    except BaseException:
        for plan in plans.values():
            if plan.sock:
                plan.sock.close()
        raise
    return plans


def port_holder(host: str, port: int) -> dict[str, Any] | None:
    """The process listening on host:port: {pid, cmdline, what}; pid None when it is not ours
    to see (another user's process)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    listening = [
        c for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    ]
    exact = [c for c in listening if c.laddr.ip in (host, "0.0.0.0", "::", "")]
    found = (exact or listening or [None])[0]
    if found is None:
        return None
    cmdline: list[str] = []
    if found.pid is not None:
        with contextlib.suppress(psutil.Error):
            cmdline = psutil.Process(found.pid).cmdline()
    text = " ".join(cmdline)
    what = "an Ollama already running" if "ollama" in text.lower() else None
    return {"pid": found.pid, "cmdline": text or None, "what": what}


def describe_holder(holder: dict[str, Any] | None) -> str:
    """`pid 123 (ollama serve), an Ollama already running` or `another user's process`."""
    if not holder:
        return "an unknown process"
    if holder.get("pid") is None:
        return "a process this user cannot see (another user's)"
    cmd = holder.get("cmdline") or "?"
    cmd = cmd if len(cmd) <= 100 else cmd[:97] + "..."
    text = f"pid {holder['pid']} ({cmd})"
    return f"{text}, {holder['what']}" if holder.get("what") else text
