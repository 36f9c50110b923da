"""The `.stack/` directory beside stack.yaml: where the lock, control socket, state file and logs
live, and the state file's shape (what `stack status --json` prints)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack.procs import pid_alive

__all__ = ["READY", "StackPaths", "live_status", "read_state", "write_state"]

LIVE = {"healthy", "running", "starting", "post-start", "stopping"}
READY = {"healthy", "running", "completed", "adopted", "external"}


@dataclass(frozen=True)
class StackPaths:
    root: Path

    @classmethod
    def for_stack(cls, stack_file: Path) -> StackPaths:
        """`.stack/` beside the stack file, unless STACK_STATE_DIR names another place (so a
        test or a second copy of the same stack can run beside a developer's own)."""
        override = os.environ.get("STACK_STATE_DIR")
        return cls(Path(override).resolve() if override else stack_file.resolve().parent / ".stack")

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def control(self) -> Path:
        return self.root / "control.sock"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def ensure(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)


def write_state(path: Path, data: dict[str, Any]) -> None:
    """Atomic replace, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def live_status(paths: StackPaths) -> dict[str, Any] | None:
    """The state file with what only the reader can know: is the supervisor alive, uptimes."""
    data = read_state(paths.state)
    if data is None:
        return None
    pid = data.get("supervisor_pid")
    alive = bool(pid) and pid_alive(int(pid))
    data["supervisor_alive"] = alive
    if not alive and data.get("phase") not in ("stopped", "failed"):
        data["phase"] = "supervisor gone"
    now = time.time()
    for svc in data.get("services", {}).values():
        started = svc.get("started_at")
        running = alive and svc.get("state") in LIVE | {"adopted", "external"}
        svc["uptime"] = round(now - started, 1) if running and started else None
        if not alive and svc.get("state") in LIVE:
            svc["state"] = "unknown (supervisor gone)"
    return data
