"""Whether each backend's models can answer, probed cheaply and cached for a moment.

`/health`, `/v1/models` and the stack's probes all read the same short-lived cache, and
concurrent readers share one probe in flight, so frequent probes cost the backends one
small request per backend every STATUS_TTL seconds at most.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from services.sovereign.backends import Backend
from services.sovereign.routing import Router

__all__ = ["STATUS_TTL", "BackendStatus", "Monitor"]

STATUS_TTL = 2.0
PROBE_LIMIT = 2.0


@dataclass(frozen=True, slots=True)
class BackendStatus:
    reachable: bool
    ready: bool
    models: list[str] = field(default_factory=list)
    error: str | None = None
    latency_ms: float = 0.0
    checked: float = 0.0  # time.monotonic() of the probe

    def report(self, backend: Backend) -> dict[str, object]:
        return {
            "type": backend.config.type,
            "url": backend.url,
            "reachable": self.reachable,
            "ready": self.ready,
            "models": self.models,
            "latency_ms": self.latency_ms,
            "age_s": round(time.monotonic() - self.checked, 2),
            "error": self.error,
        }


async def _probe(backend: Backend) -> BackendStatus:
    started = time.monotonic()
    try:
        reachable, models, error = await backend.readiness(PROBE_LIMIT)
    except Exception as exc:  # any failure is what the status reports, not raises
        reachable, models, error = False, [], getattr(exc, "message", None) or repr(exc)
    latency = round((time.monotonic() - started) * 1000, 2)
    ready = reachable and error is None
    return BackendStatus(reachable, ready, models, error, latency, time.monotonic())


class Monitor:
    def __init__(self, router: Router, ttl: float = STATUS_TTL) -> None:
        self.router = router
        self.ttl = ttl
        self._cached: dict[str, BackendStatus] = {}
        self._inflight: dict[str, asyncio.Future[BackendStatus]] = {}

    async def status(self, name: str) -> BackendStatus:
        cached = self._cached.get(name)
        if cached is not None and time.monotonic() - cached.checked < self.ttl:
            return cached
        probe = self._inflight.get(name)
        if probe is None:
            probe = asyncio.ensure_future(_probe(self.router.backends[name]))
            self._inflight[name] = probe
            probe.add_done_callback(lambda done: self._store(name, done))
        # Shielded: one reader leaving must not cancel the probe the others wait for.
        return await asyncio.shield(probe)

    def _store(self, name: str, done: asyncio.Future[BackendStatus]) -> None:
        self._inflight.pop(name, None)
        if not done.cancelled() and done.exception() is None:
            self._cached[name] = done.result()

    async def all(self) -> dict[str, BackendStatus]:
        names = list(self.router.backends)
        statuses = await asyncio.gather(*(self.status(n) for n in names))
        return dict(zip(names, statuses, strict=True))
