"""SandboxPool: one session per key (a thread), made on first use, ended when idle.

The pool checks once that a sandbox can be made here and otherwise refuses every execution
with the reason (``SandboxUnavailable``), unless the explicit development setting allows
running code without one. Sessions are spawned from the event loop's thread, which lives as
long as the service: ``--die-with-parent`` follows the thread that started bwrap, so a
session started from a short-lived worker thread would die with that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from .bwrap import (
    Interpreter,
    SandboxUnavailable,
    check_bwrap,
    host_interpreter,
    prepare_view,
)
from .cgroups import CgroupTree, find_cgroup_tree, pid_alive
from .limits import SandboxLimits
from .session import ExecutionResult, SandboxSession, SessionClosed

__all__ = ["SandboxPool"]

log = logging.getLogger(__name__)


_STALE = re.compile(r"sandbox-(\d+)-")


def remove_stale_dirs(base: Path) -> None:
    """Session directories a service that died left in ``base`` (``sandbox-<pid>-…``)."""
    with contextlib.suppress(OSError):
        for path in base.glob("sandbox-*-*"):
            match = _STALE.match(path.name)
            if match and path.is_dir() and not pid_alive(int(match.group(1))):
                shutil.rmtree(path, ignore_errors=True)


class SandboxPool:
    def __init__(
        self,
        *,
        limits: SandboxLimits | None = None,
        bwrap: str | None = None,
        work_dir: Path | None = None,
        idle_seconds: float = 1200.0,
        max_sessions: int = 32,
        allow_unsandboxed: bool = False,
        interpreter: Interpreter | None = None,
        uid_base: int = 200_000,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.bwrap_setting = bwrap
        self.idle_seconds = idle_seconds
        self.max_sessions = max_sessions
        self.allow_unsandboxed = allow_unsandboxed
        self.interpreter = interpreter or host_interpreter()
        self._work_dir_setting = work_dir
        self.work_dir: Path | None = None
        self.view: Path | None = None
        self.sessions: dict[str, SandboxSession] = {}
        self._bwrap: str | None = None
        self._cgroups: CgroupTree | None = None
        self._problem: str | None = None
        self._checked = False
        self._check_lock = asyncio.Lock()
        self._create_lock = asyncio.Lock()
        self._reaper: asyncio.Task[None] | None = None
        self._counter = 0
        # Run as root, each live session gets its own host uid: uid_base + a free slot.
        self.uid_base = uid_base
        self._as_root = os.geteuid() == 0

    # -- availability ---------------------------------------------------------------------

    def _check(self) -> None:
        try:
            self._bwrap = check_bwrap(self.bwrap_setting, self.uid_base if self._as_root else None)
            # Optional: RLIMIT_NPROC in each session's user namespace (and own uid, as root)
            # already bounds its processes; a cgroup adds a memory ceiling for the session.
            self._cgroups = find_cgroup_tree(f"sovereign-sandbox-{os.getpid()}")
        except SandboxUnavailable as exc:
            if not self.allow_unsandboxed:
                self._problem = f"code_interpreter is unavailable: {exc}"
                log.error("%s", self._problem)
                return
            log.warning("no sandbox (%s); CODE_INTERPRETER_ALLOW_UNSANDBOXED is set", exc)
            self._bwrap = None
            self._cgroups = None
        base = self._work_dir_setting
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        remove_stale_dirs(Path(base or tempfile.gettempdir()))
        remove_stale_dirs(Path("/tmp"))
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"sandbox-{os.getpid()}-", dir=base))
        os.chmod(self.work_dir, 0o700)
        if self._as_root and self.sandboxed:
            # Empty mount points any uid can reach; each session's launcher binds its own
            # interpreter and data there, in a mount namespace of its own.
            self.view = Path(tempfile.mkdtemp(prefix=f"sandbox-{os.getpid()}-view-", dir="/tmp"))
            prepare_view(self.interpreter, self.view)

    async def ensure_available(self) -> None:
        """Raise SandboxUnavailable (with what is missing) if code cannot be run here."""
        async with self._check_lock:
            if not self._checked:
                await asyncio.to_thread(self._check)
                self._checked = True
        if self._problem is not None:
            raise SandboxUnavailable(self._problem)

    @property
    def sandboxed(self) -> bool:
        return self._bwrap is not None

    # -- sessions -------------------------------------------------------------------------

    async def session(self, key: str) -> SandboxSession:
        await self.ensure_available()
        async with self._create_lock:
            existing = self.sessions.get(key)
            if existing is not None:
                return existing
            if len(self.sessions) >= self.max_sessions:
                await self._evict_one()
            assert self.work_dir is not None
            self._counter += 1
            # Unique across pools: several may share this process's cgroup parent.
            name = f"s{self._counter}-{secrets.token_hex(4)}"
            cgroup = None
            if self._cgroups is not None:
                cgroup = await asyncio.to_thread(
                    self._cgroups.create,
                    name,
                    max_pids=self.limits.max_processes,
                    memory_bytes=self.limits.memory_bytes,
                )
            uid = None
            if self._as_root and self.sandboxed:
                taken = {s.uid for s in self.sessions.values()}
                uid = next(
                    self.uid_base + i
                    for i in range(len(taken) + 1)
                    if self.uid_base + i not in taken
                )
            session = SandboxSession(
                key=key,
                directory=self.work_dir / name,
                limits=self.limits,
                interpreter=self.interpreter,
                bwrap=self._bwrap,
                cgroup=cgroup,
                uid=uid,
                view=self.view if uid is not None else None,
            )
            self.sessions[key] = session
            self._ensure_reaper()
            return session

    async def execute(self, key: str, code: str) -> ExecutionResult:
        for _ in range(3):
            session = await self.session(key)
            try:
                return await session.execute(code)
            except SessionClosed:
                continue  # ended meanwhile (idle or evicted): the key gets a new session
        raise SandboxUnavailable("code_interpreter sessions are being ended faster than used")

    async def close_session(self, key: str) -> None:
        session = self.sessions.pop(key, None)
        if session is not None:
            async with session.lock:
                await session.close()

    async def _evict_one(self) -> None:
        idle = [s for s in self.sessions.values() if not s.lock.locked()]
        if not idle:
            raise SandboxUnavailable(
                f"all {self.max_sessions} code_interpreter sessions are busy; try again later"
            )
        oldest = min(idle, key=lambda s: s.last_used)
        log.info("ending code_interpreter session %s to make room", oldest.key)
        await self.close_session(oldest.key)

    # -- idle sessions and shutdown -------------------------------------------------------

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle(), name="sandbox-reaper")

    async def _reap_idle(self) -> None:
        interval = max(0.05, min(self.idle_seconds / 4, 30.0))
        while self.sessions:
            await asyncio.sleep(interval)
            cutoff = time.monotonic() - self.idle_seconds
            for key, session in list(self.sessions.items()):
                if session.last_used < cutoff and not session.lock.locked():
                    log.info("ending idle code_interpreter session %s", key)
                    with contextlib.suppress(Exception):
                        await self.close_session(key)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for key in list(self.sessions):
            session = self.sessions.pop(key)
            with contextlib.suppress(Exception):
                await session.close()
        if self._cgroups is not None:
            with contextlib.suppress(OSError):
                self._cgroups.pids_parent.rmdir()
            if self._cgroups.memory_parent not in (None, self._cgroups.pids_parent):
                with contextlib.suppress(OSError):
                    self._cgroups.memory_parent.rmdir()  # type: ignore[union-attr]
        for directory in (self.work_dir, self.view):
            if directory is not None:
                await asyncio.to_thread(shutil.rmtree, directory, True)
