"""Health probes (http, tcp, command). They know nothing about processes: each check is one
attempt against an address or a command, with a timeout, returning ok and a reason."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from stack import procs
from stack.spec import Probe

__all__ = ["ProbeTarget", "check"]


@dataclass(frozen=True)
class ProbeTarget:
    """What a probe is aimed at, after ports are resolved."""

    probe: Probe
    host: str
    port: int | None
    url: str | None  # the service's base URL, for relative http paths
    cwd: str = "."
    env: dict[str, str] | None = None

    @property
    def http_url(self) -> str:
        path = self.probe.http or ""
        return path if "://" in path else (self.url or "").rstrip("/") + path


async def check(target: ProbeTarget) -> tuple[bool, str]:
    """One probe attempt: (ok, detail)."""
    probe = target.probe
    try:
        if probe.kind == "http":
            return await asyncio.wait_for(_http(target.http_url), probe.timeout)
        if probe.kind == "tcp":
            host, port = target.host, target.port
            if isinstance(probe.tcp, str):
                host, _, p = probe.tcp.rpartition(":")
                port = int(p)
            return await asyncio.wait_for(_tcp(host, int(port or 0)), probe.timeout)
        return await _command(probe.command or "", probe.timeout, target.cwd, target.env)
    except TimeoutError:
        return False, f"{probe.kind} probe timed out after {probe.timeout:g}s"
    except ConnectionRefusedError:
        where = target.http_url if probe.kind == "http" else f"{target.host}:{target.port}"
        return False, f"{probe.kind} probe: connection refused ({where})"
    except OSError as exc:
        return False, f"{probe.kind} probe: {exc.strerror or exc}"


async def _tcp(host: str, port: int) -> tuple[bool, str]:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, f"tcp {host}:{port} accepts connections"


async def _http(url: str) -> tuple[bool, str]:
    # A bare HTTP/1.1 GET: enough for a health check, and it keeps httpx out of the
    # supervisor's memory and start-up time.
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False, f"unsupported probe URL {url!r} (http only)"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
            "User-Agent: stack-probe\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    fields = status_line.decode("latin-1").split()
    if len(fields) < 2 or not fields[1].isdigit():
        return False, f"GET {url}: no HTTP response"
    status = int(fields[1])
    return 200 <= status < 400, f"GET {url} → {status}"


async def _command(
    cmd: str, timeout: float, cwd: str, env: dict[str, str] | None
) -> tuple[bool, str]:
    proc = await procs.spawn(shlex.split(cmd), cwd, env if env is not None else dict(os.environ))
    try:
        code = await asyncio.wait_for(asyncio.shield(proc.exited), timeout)
    except TimeoutError:
        return False, f"command probe timed out after {timeout:g}s"
    finally:
        procs.kill_group(proc.pid)  # and whatever it left behind, which also closes the pipe
    try:
        out = await asyncio.wait_for(proc.stdout.read(), 1.0)
    except TimeoutError:  # something that left the group still holds the pipe
        out = b""
    tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
    detail = f"`{cmd}` exited {code}" + (f": {tail[0]}" if tail else "")
    return code == 0, detail
