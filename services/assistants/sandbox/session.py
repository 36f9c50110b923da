"""One sandbox session: a long-lived Python process in bubblewrap, run one execution at a time.

A timeout, a crash or a limit that ends the process ends the session: the next execution
starts a fresh Python (files in /mnt/data stay). Killing the launcher is enough to end
everything inside: the sandbox's PID 1 dies with it (``--die-with-parent``), and with it its
PID namespace; the session's cgroup, where there is one, is emptied as well.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from .bwrap import (
    CGROUP_LAUNCHER,
    INSIDE_PACKAGES,
    REPL_PATH,
    Interpreter,
    Sources,
    bwrap_command,
    root_launcher,
)
from .cgroups import SessionCgroup
from .files import (
    OutputFile,
    Snapshot,
    changed_files,
    remove_new,
    snapshot,
    usage,
    write_input,
)
from .limits import SandboxLimits

__all__ = ["ExecutionResult", "SandboxSession", "SessionClosed"]

log = logging.getLogger(__name__)

MAX_STATUS_BYTES = 64 * 1024 * 1024
_SIGNALS = {
    signal.SIGKILL: "it was killed (out of memory, or a limit was reached)",
    signal.SIGXCPU: "it used up its CPU time",
    signal.SIGXFSZ: "it wrote a file larger than the file size limit",
    signal.SIGSEGV: "it crashed (segmentation fault)",
    signal.SIGABRT: "it aborted",
}


DISK_CHECK_SECONDS = 0.5


class _ProcessEnded(Exception):
    pass


class _DiskFull(Exception):
    pass


class SessionClosed(Exception):
    """The session was ended (idle, or evicted) before this execution could start."""


@dataclass
class ExecutionResult:
    """What one execution produced. ``logs`` is capped at the log limit."""

    logs: str = ""
    error: str | None = None
    images: list[bytes] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)
    dropped_bytes: int = 0
    session_restarted: bool = False
    elapsed: float = 0.0

    def model_output(self, max_chars: int) -> str:
        """The tool result the model reads: the logs (head and tail if long), then the error."""
        text = self.logs
        if self.dropped_bytes:
            text += f"\n[... {self.dropped_bytes} more bytes of output not shown]"
        if len(text) > max_chars:
            half = max_chars // 2
            omitted = len(text) - 2 * half
            text = f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}"
        if self.error and self.error not in text:
            text = f"{text}\n{self.error}" if text else self.error
        for item in self.files:
            text += f"\n[file written: {item.path}]"
        if self.images:
            text += f"\n[{len(self.images)} image(s) displayed to the user]"
        return text.strip() or "(no output)"


class SandboxSession:
    def __init__(
        self,
        *,
        key: str,
        directory: Path,
        limits: SandboxLimits,
        interpreter: Interpreter,
        bwrap: str | None,
        cgroup: SessionCgroup | None = None,
        uid: int | None = None,
        view: Path | None = None,
    ) -> None:
        self.key = key
        self.directory = directory
        self.data_dir = directory / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Set when the service runs as root: the session's own unprivileged host uid.
        self.uid = uid
        self.view = view
        if uid is not None:
            os.chown(self.data_dir, uid, uid)
        self.limits = limits
        self.interpreter = interpreter
        self.bwrap = bwrap  # None: no sandbox (the explicit development setting)
        self.cgroup = cgroup
        self.lock = asyncio.Lock()
        self.last_used = time.monotonic()
        self.starts = 0
        self.closed = False
        self._proc: asyncio.subprocess.Process | None = None
        self._snapshot: Snapshot = {}
        # Input files put in /mnt/data: file id → path.
        self.inputs: dict[str, str] = {}

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _command(self) -> tuple[list[str], dict[str, str], str | None]:
        limits = self.limits.rlimits()
        config: dict[str, object] = {"limits": limits}
        if self.bwrap is None:
            # No namespace of its own: a process limit would count all of the host user's.
            limits.pop("RLIMIT_NPROC")
            if self.interpreter.packages:
                config["path"] = [self.interpreter.packages]
            command = [sys.executable, "-I", "-S", "-B", str(REPL_PATH), json.dumps(config)]
            env = {"PATH": "/usr/bin:/bin", "HOME": str(self.directory), "MPLBACKEND": "Agg"}
            return command, env, str(self.data_dir)
        if self.interpreter.packages:
            config["path"] = [INSIDE_PACKAGES]
        as_root = self.uid is not None and self.view is not None
        sources = (
            Sources.view(self.interpreter, self.view)  # type: ignore[arg-type]
            if as_root
            else Sources.direct(self.interpreter, self.data_dir)
        )
        command = bwrap_command(
            self.bwrap,
            self.interpreter,
            sources,
            tmp_bytes=self.limits.tmp_bytes,
            config_json=json.dumps(config),
        )
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        # The launcher joins the session's cgroups before bwrap starts: nothing inside
        # can leave them.
        env["SANDBOX_CGROUP_PROCS"] = " ".join(self.cgroup.procs_files) if self.cgroup else ""
        if as_root:
            env["SANDBOX_UID"] = str(self.uid)
            command = [*root_launcher(self.interpreter, self.view, self.data_dir), *command]  # type: ignore[arg-type]
        elif self.cgroup is not None:
            command = ["/bin/sh", "-c", CGROUP_LAUNCHER, "sandbox", *command]
        return command, env, None

    async def start(self) -> None:
        command, env, cwd = self._command()
        self._proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            limit=1 << 16,
        )
        self.starts += 1
        self._snapshot = snapshot(self.data_dir)

    def put_file(self, name: str, data: bytes) -> str:
        path = write_input(self.data_dir, name, data, owner=self.uid)
        self._snapshot = snapshot(self.data_dir)
        return path

    async def execute(self, code: str) -> ExecutionResult:
        """Run ``code``; whatever it does, this returns within the wall-clock limit."""
        async with self.lock:
            if self.closed:
                raise SessionClosed(self.key)
            self.last_used = time.monotonic()
            try:
                return await self._execute(code)
            finally:
                self.last_used = time.monotonic()

    async def _execute(self, code: str) -> ExecutionResult:
        result = ExecutionResult()
        if not self.alive:
            result.session_restarted = self.starts > 0
            await self.start()
        if self.bwrap is None:
            log.warning("code_interpreter is running code WITHOUT a sandbox (development setting)")
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        token = secrets.token_hex(16)
        request = {"code": code, "token": token, "cpu_seconds": self.limits.cpu_seconds}
        kept = bytearray()
        started = time.monotonic()
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            async with asyncio.timeout(self.limits.timeout_seconds):
                await proc.stdin.drain()
                status = await self._watched(self._read_until(proc.stdout, token, kept, result))
            await self._check_disk()
            result.error = status.get("error")
            for item in status.get("images") or ():
                result.images.append(base64.b64decode(item))
        except TimeoutError:
            await self.kill()
            result.error = (
                f"Error: the execution was stopped after {self.limits.timeout_seconds:g} s "
                "(time limit). The Python session was restarted: variables are lost, "
                "files in /mnt/data are kept."
            )
        except _DiskFull:
            if self.alive:
                await self.kill()
                result.session_restarted = True
            await asyncio.to_thread(remove_new, self.data_dir, self._snapshot)
            result.error = (
                f"Error: /mnt/data went over its limit ({self.limits.disk_bytes // 2**20} MB, "
                f"{self.limits.disk_entries} files); what this execution wrote there was "
                "removed and the Python session was restarted (variables are lost)."
            )
        except asyncio.CancelledError:
            # The run was cancelled mid-execution: the code must not go on running.
            await asyncio.shield(self.kill())
            raise
        except (_ProcessEnded, ConnectionError, BrokenPipeError):
            code_ = await self._reap()
            result.error = (
                f"Error: the Python process ended ({_describe_exit(code_)}). The session was "
                "restarted: variables are lost, files in /mnt/data are kept."
            )
        result.elapsed = time.monotonic() - started
        result.logs = kept.decode(errors="replace")
        result.files, self._snapshot = await asyncio.to_thread(
            changed_files,
            self.data_dir,
            self._snapshot,
            max_files=self.limits.max_output_files,
            max_bytes=self.limits.max_output_file_bytes,
        )
        return result

    async def _check_disk(self) -> None:
        used, entries = await asyncio.to_thread(
            usage, self.data_dir, max_entries=self.limits.disk_entries
        )
        if used > self.limits.disk_bytes or entries > self.limits.disk_entries:
            raise _DiskFull

    async def _watched(self, reading: Awaitable[dict[str, object]]) -> dict[str, object]:
        """``reading``, while /mnt/data is checked against its limit every half second."""

        async def watch() -> None:
            while True:
                await asyncio.sleep(DISK_CHECK_SECONDS)
                await self._check_disk()

        reader, watcher = asyncio.ensure_future(reading), asyncio.ensure_future(watch())
        try:
            await asyncio.wait({reader, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                watcher.result()  # raises _DiskFull
            return reader.result()
        finally:
            for task in (reader, watcher):
                task.cancel()
            await asyncio.gather(reader, watcher, return_exceptions=True)

    async def _read_until(
        self,
        stream: asyncio.StreamReader,
        token: str,
        kept: bytearray,
        result: ExecutionResult,
    ) -> dict[str, object]:
        marker = b"\x1e" + token.encode() + b"\x1f"
        pending = b""
        cap = self.limits.log_bytes
        while True:
            chunk = await stream.read(1 << 16)
            if not chunk:
                raise _ProcessEnded
            data = pending + chunk
            index = data.find(marker)
            if index < 0:
                # Hold back only a tail that may be the start of the marker.
                tail = max(0, len(data) - len(marker) + 1)
                cut = tail + data[tail:].find(b"\x1e") if b"\x1e" in data[tail:] else len(data)
                self._keep(data[:cut], kept, cap, result)
                pending = data[cut:]
                continue
            self._keep(data[:index], kept, cap, result)
            rest = data[index + len(marker) :]
            while b"\n" not in rest:
                if len(rest) > MAX_STATUS_BYTES:
                    raise _ProcessEnded
                more = await stream.read(1 << 20)
                if not more:
                    raise _ProcessEnded
                rest += more
            line = rest.split(b"\n", 1)[0]
            return json.loads(line)

    @staticmethod
    def _keep(data: bytes, kept: bytearray, cap: int, result: ExecutionResult) -> None:
        room = cap - len(kept)
        if room > 0:
            kept += data[:room]
        result.dropped_bytes += max(0, len(data) - max(room, 0))

    async def _reap(self) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        try:
            async with asyncio.timeout(2):
                return await proc.wait()
        except TimeoutError:
            await self.kill()
            return proc.returncode

    async def kill(self) -> None:
        """End every process of the session now."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.kill_all)
        if proc is not None:
            with contextlib.suppress(Exception):
                await proc.wait()
            # Drain to EOF so the pipes close now, not when the loop may already be gone.
            if proc.stdin is not None:
                proc.stdin.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    while proc.stdout is not None and await proc.stdout.read(1 << 16):
                        pass

    async def close(self) -> None:
        """End the session and free its memory and disk."""
        self.closed = True
        await self.kill()
        if self.cgroup is not None:
            await asyncio.to_thread(self.cgroup.remove)
        await asyncio.to_thread(shutil.rmtree, self.directory, True)


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "it stopped answering"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"signal {-returncode}"
        return f"{sig.name}: {_SIGNALS.get(sig, 'it was signalled')}"
    if returncode > 128:
        # bwrap reports its child's death by signal N as exit 128 + N.
        return _describe_exit(128 - returncode)
    return f"exit status {returncode}"
