"""What one sandbox session may use, with the documented defaults."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SandboxLimits"]

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    # Wall-clock time of one execution; past it the session's processes are all killed.
    timeout_seconds: float = 60.0
    # CPU time of one execution (per process: RLIMIT_CPU).
    cpu_seconds: int = 60
    # Address space per process (RLIMIT_AS) and, with a cgroup, memory of the whole session.
    memory_bytes: int = 1024 * MIB
    # Processes and threads of one session (RLIMIT_NPROC in its own user namespace; a pids
    # cgroup where the service runs as root).
    max_processes: int = 128
    open_files: int = 256
    # Largest file the code may write (RLIMIT_FSIZE) and size of the private /tmp (tmpfs).
    file_bytes: int = 100 * MIB
    tmp_bytes: int = 256 * MIB
    # Characters of output the model gets back, and bytes of logs kept on the run step.
    output_chars: int = 20_000
    log_bytes: int = 1_000_000
    # What /mnt/data may hold (bytes on disk, and files and directories), checked while
    # code runs: past it, the execution is stopped and what it wrote is removed.
    disk_bytes: int = 1024 * MIB
    disk_entries: int = 10_000
    # Files written to /mnt/data taken back after one execution, and their size in all.
    max_output_files: int = 20
    max_output_file_bytes: int = 100 * MIB

    def rlimits(self) -> dict[str, int]:
        """The rlimits set inside the sandbox before any code runs."""
        return {
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_CORE": 0,
        }
