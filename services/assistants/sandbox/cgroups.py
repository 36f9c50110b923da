"""Per-session control groups: a process and memory ceiling shared by everything a session runs.

RLIMIT_NPROC alone cannot bound a session when the service runs as root (the kernel exempts
uid 0, and every sandbox maps to the service's uid), so then a ``pids`` cgroup per session is
required. cgroup v1 (``/sys/fs/cgroup/pids``) and v2 (a writable subtree) are both handled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupTree", "SessionCgroup", "find_cgroup_tree", "pid_alive"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class SessionCgroup:
    """The cgroup directories (one per controller on v1, one on v2) of one session."""

    dirs: tuple[Path, ...]

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(p) for p in Path(path).read_text().split())
        return found

    def kill_all(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        self.kill_all()
        for directory in self.dirs:
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


@dataclass(frozen=True)
class CgroupTree:
    """Where session cgroups are made: a parent per controller (v1) or one parent (v2)."""

    pids_parent: Path
    memory_parent: Path | None
    v2: bool

    def create(self, name: str, *, max_pids: int, memory_bytes: int) -> SessionCgroup:
        dirs: list[Path] = []
        pids_dir = self.pids_parent / name
        pids_dir.mkdir()
        dirs.append(pids_dir)
        (pids_dir / "pids.max").write_text(str(max_pids))
        if self.v2:
            if self.memory_parent is not None:
                (pids_dir / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (pids_dir / "memory.swap.max").write_text("0")
        elif self.memory_parent is not None:
            memory_dir = self.memory_parent / name
            memory_dir.mkdir()
            dirs.append(memory_dir)
            (memory_dir / "memory.limit_in_bytes").write_text(str(memory_bytes))
        return SessionCgroup(tuple(dirs))


def _own_path(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller, or for v2 with ``controller=''``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if (controller and controller in names.split(",")) or (not controller and names == ""):
                return path
    return None


def _writable_parent(base: Path, name: str) -> Path | None:
    _remove_stale(base, name.rstrip("0123456789"))
    parent = base / name
    try:
        parent.mkdir(exist_ok=True)
    except OSError:
        return None
    return parent if os.access(parent, os.W_OK) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale(base: Path, prefix: str) -> None:
    """Cgroups a service that died left behind (named ``prefix<pid>``, that pid gone)."""
    with contextlib.suppress(OSError):
        for parent in base.glob(f"{prefix}*"):
            pid = parent.name[len(prefix) :]
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            children = [d for d in parent.iterdir() if d.is_dir()]
            SessionCgroup(tuple(children)).remove()
            with contextlib.suppress(OSError):
                parent.rmdir()


def find_cgroup_tree(name: str) -> CgroupTree | None:
    """A writable place for per-session cgroups named under ``name`` (``<prefix><pid>``),
    or None. Stale ones of dead processes are removed on the way."""
    pids_v1 = CGROUP_ROOT / "pids"
    if (pids_v1 / "cgroup.procs").exists():
        own = _own_path("pids") or "/"
        pids_parent = _writable_parent(pids_v1 / own.lstrip("/"), name)
        if pids_parent is None:
            return None
        memory_parent = None
        memory_v1 = CGROUP_ROOT / "memory"
        if (memory_v1 / "cgroup.procs").exists():
            own_memory = _own_path("memory") or "/"
            memory_parent = _writable_parent(memory_v1 / own_memory.lstrip("/"), name)
        return CgroupTree(pids_parent, memory_parent, v2=False)
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        own = _own_path("") or "/"
        parent = _writable_parent(CGROUP_ROOT / own.lstrip("/"), name)
        if parent is None:
            return None
        available = (parent / "cgroup.controllers").read_text().split()
        if "pids" not in available:
            return None
        wanted = ["+pids"] + (["+memory"] if "memory" in available else [])
        try:
            (parent / "cgroup.subtree_control").write_text(" ".join(wanted))
        except OSError:
            return None
        return CgroupTree(parent, parent if "memory" in available else None, v2=True)
    return None
