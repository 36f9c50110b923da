"""Everything OS-specific about processes: process groups, signals, the orphan watchdog, the
lock, the control socket, daemonizing. A Windows port is a change in this module only."""

# How children never outlive the stack, even after `kill -9` of the supervisor:
#   1. each service runs in its own session/process group, so a signal reaches its children;
#   2. the direct child gets PR_SET_PDEATHSIG(SIGKILL) (Linux), so it dies with the supervisor;
#   3. a tiny watchdog (a POSIX shell script, ~2 MB where a Python one would be ~30) reads a
#      pipe on which the supervisor announces each process group; when the pipe closes without
#      a goodbye (the supervisor died), it sends TERM then KILL to every group still
#      announced, which reaches the grandchildren that (2) does not.
# On Windows the same would be a job object with KILL_ON_JOB_CLOSE, CTRL_BREAK_EVENT for the
# stop signal, a named pipe for the control channel and spawn instead of fork.

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

# psutil and asyncio are imported where used: `stack status` needs neither at start-up

__all__ = [
    "Watchdog",
    "group_alive",
    "own_module",
    "pid_alive",
    "signal_group",
    "spawn",
]

_PR_SET_PDEATHSIG = 1
# dlopen(NULL): the interpreter's own symbols, libc's prctl among them. find_library("c")
# would run `ldconfig -p` in a subprocess on every `stack` command just to name the same file.
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _child_setup(parent: int) -> None:
    """Runs in the child between fork and exec: die with the supervisor."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        # the supervisor died before prctl took effect; nobody would ever stop us
        os._exit(70)


@dataclass
class Child:
    """A started process: its pid (also its group id), its output, and a future that resolves
    to the exit code as soon as it exits. (asyncio's Process.wait() also waits until the
    output pipe closes, which a grandchild can keep open forever.)"""

    pid: int
    stdout: asyncio.StreamReader
    exited: asyncio.Future[int]
    process: asyncio.subprocess.Process


async def spawn(
    argv: Sequence[str], cwd: str, env: dict[str, str], pass_fds: Sequence[int] = ()
) -> Child:
    """Start argv in a new session with stdout+stderr on one pipe."""
    import asyncio
    import subprocess

    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()

    class Protocol(asyncio.subprocess.SubprocessStreamProtocol):
        def process_exited(self) -> None:
            super().process_exited()
            if not exited.done():
                exited.set_result(transport.get_returncode())

    parent = os.getpid()
    transport, protocol = await loop.subprocess_exec(
        lambda: Protocol(limit=2**16, loop=loop),
        *argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: _child_setup(parent),
        pass_fds=tuple(pass_fds),
    )
    process = asyncio.subprocess.Process(transport, protocol, loop)
    assert process.stdout is not None
    return Child(process.pid, process.stdout, exited, process)


async def output_lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """A child's output, line by line, decoded and without the newline, until EOF."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line longer than the stream limit: take it in pieces
            raw = await stream.read(65536)
        if not raw:
            return
        yield raw.decode(errors="replace").rstrip("\n")


def own_module(module: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run one of the stack's modules in a fresh interpreter: this
    very package, not whatever `stack` directory the working directory holds (-P)."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return [sys.executable, "-P", "-m", module], {**env, "PYTHONPATH": path}


def signal_group(pgid: int, sig: int) -> bool:
    """Send sig to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the group."""
    import psutil

    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error, OSError):
            continue
    return False


def pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def signal_number(name: str) -> int:
    """A signal by name ("SIGTERM"); names are what stack.yaml and the supervisor use."""
    return int(getattr(signal, name))


def kill_group(pgid: int) -> bool:
    return signal_group(pgid, signal.SIGKILL)


def terminate(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def on_stop_signals(loop: asyncio.AbstractEventLoop, callback: Callable[[int], None]) -> None:
    """Call callback(signum) from the loop on Ctrl-C, TERM and HUP."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, callback, sig)


async def serve_control(path: Path, handler: Callable[..., Awaitable[None]]) -> asyncio.Server:
    """The supervisor's control channel: a Unix socket beside the state file."""
    import asyncio

    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a supervisor that was killed
    return await asyncio.start_unix_server(handler, path=str(path))


def control_request(path: Path, request: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """One JSON request and its JSON reply over the control channel; OSError if nobody listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(sock.makefile().readline() or "{}")


def try_lock(path: Path) -> int | None:
    """An exclusive lock held as long as the returned fd is open (so it dies with the
    process, even on kill -9); None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# The watchdog's script. Lines on stdin: +PGID, -PGID, bye. On EOF without bye: TERM to
# every group left, up to GRACE seconds for them to go, then KILL.
_WATCHDOG = r"""
trap '' INT TERM HUP
groups=" "
while IFS= read -r line; do
  case "$line" in
    bye) exit 0 ;;
    +*) groups="$groups${line#+} " ;;
    -*) g=${line#-}
        case "$groups" in *" $g "*) groups="${groups%% $g *} ${groups#* $g }" ;; esac ;;
  esac
done
for g in $groups; do kill -TERM "-$g" 2>/dev/null; done
i=0
while [ "$i" -lt "$1" ]; do
  left=""
  for g in $groups; do kill -0 "-$g" 2>/dev/null && left="$left $g"; done
  [ -z "$left" ] && exit 0
  groups=$left
  sleep 0.05
  i=$((i + 1))
done
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
exit 0
"""


class Watchdog:
    """The orphan watchdog (see the module docstring)."""

    def __init__(self, grace: float = 2.0) -> None:
        import subprocess

        self._proc = subprocess.Popen(
            ["/bin/sh", "-c", _WATCHDOG, "stack-watchdog", str(max(1, int(grace / 0.05)))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # out of the terminal's group: Ctrl-C is the supervisor's
        )
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()
        self.pid = self._proc.pid

    def _send(self, line: str) -> None:
        with contextlib.suppress(OSError):
            os.write(self._fd, line.encode())

    def track(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def untrack(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def close(self, clean: bool = True) -> None:
        """Clean: say goodbye so the watchdog exits without killing anything; otherwise (the
        supervisor is failing) just close, and it kills every group still announced."""
        if clean:
            self._send("bye\n")
        with contextlib.suppress(OSError):
            self._proc.stdin.close()  # type: ignore[union-attr]
        self._proc.wait()
