"""The bubblewrap command line of a sandbox session, and the check that one can be made.

Bound read-only: /usr (with the usual /bin, /lib symlinks), /etc/fonts, the interpreter's
prefix and the packages directory. Nothing else of /etc, nothing of the home, the project or
its database is visible; the session's own data directory is /mnt/data, /tmp is a private
size-limited tmpfs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CGROUP_LAUNCHER",
    "Interpreter",
    "SandboxUnavailable",
    "Sources",
    "bwrap_command",
    "check_bwrap",
    "host_interpreter",
    "prepare_view",
    "root_launcher",
]

REPL_PATH = Path(__file__).with_name("repl.py")
INSIDE_REPL = "/opt/sandbox/repl.py"
INSIDE_PACKAGES = "/opt/sandbox/site-packages"
SANDBOX_UID = 1000


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here; the message says what is missing."""


@dataclass(frozen=True)
class Interpreter:
    """The Python run inside: its executable, the prefix it needs, and its packages."""

    executable: str
    prefix: str
    packages: str | None


def host_interpreter() -> Interpreter:
    """This service's own Python: the base prefix, and the environment's site-packages."""
    prefix = sys.base_prefix
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    executable = os.path.join(prefix, "bin", f"python{version}")
    if not os.path.exists(executable):
        executable = os.path.realpath(sys.executable)
    purelib = sysconfig.get_paths()["purelib"]
    packages = purelib if os.path.isdir(purelib) and sys.prefix != sys.base_prefix else None
    return Interpreter(executable=executable, prefix=prefix, packages=packages)


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    # Font configuration only (matplotlib asks fontconfig): nothing else of /etc.
    args += ["--ro-bind-try", "/etc/fonts", "/etc/fonts"]
    return args


@dataclass(frozen=True)
class Sources:
    """Host paths bound into the sandbox: the real ones, or a root launcher's private view."""

    prefix: str
    packages: str | None
    repl: str
    data: str

    @classmethod
    def direct(cls, interpreter: Interpreter, data_dir: Path) -> Sources:
        return cls(interpreter.prefix, interpreter.packages, str(REPL_PATH), str(data_dir))

    @classmethod
    def view(cls, interpreter: Interpreter, view: Path) -> Sources:
        packages = str(view / "packages") if interpreter.packages else None
        return cls(str(view / "prefix"), packages, str(view / "repl.py"), str(view / "data"))


# Run as root, the launcher makes a private mount namespace where the interpreter (under a
# home only root may enter, such as /root/.pyenv) is bound at paths the session's own uid
# can reach, joins the session's cgroups, then becomes that uid and starts bwrap. A sandbox
# never runs as host uid 0: inside a user namespace, uid 0 still passes every permission
# check on root-owned kernel files (/proc/sys/kernel/core_pattern, for one).
ROOT_LAUNCHER = """
for f in $SANDBOX_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done
while [ "$1" != "--" ]; do mount --bind "$1" "$2" || exit 125; shift 2; done
shift
exec setpriv --reuid="$SANDBOX_UID" --regid="$SANDBOX_UID" --clear-groups -- "$@"
"""
# Unprivileged, the launcher only joins the session's cgroups (when there are any).
CGROUP_LAUNCHER = 'for f in $SANDBOX_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"'


def root_launcher(interpreter: Interpreter, view: Path, data_dir: Path) -> list[str]:
    """The command before bwrap's when the service runs as root (see ROOT_LAUNCHER)."""
    mounts = [interpreter.prefix, str(view / "prefix"), str(REPL_PATH), str(view / "repl.py")]
    mounts += [str(data_dir), str(view / "data")]
    if interpreter.packages:
        mounts += [interpreter.packages, str(view / "packages")]
    unshare = ["unshare", "--mount", "--propagation", "private"]
    return [*unshare, "/bin/sh", "-c", ROOT_LAUNCHER, "sandbox", *mounts, "--"]


def prepare_view(interpreter: Interpreter, view: Path) -> None:
    """The empty mount points of a root launcher's view, reachable by any uid."""
    view.mkdir(mode=0o755, exist_ok=True)
    (view / "prefix").mkdir(exist_ok=True)
    (view / "packages").mkdir(exist_ok=True)
    (view / "data").mkdir(exist_ok=True)
    (view / "repl.py").touch()
    os.chmod(view, 0o755)


def bwrap_command(
    bwrap: str,
    interpreter: Interpreter,
    sources: Sources,
    *,
    tmp_bytes: int,
    config_json: str,
) -> list[str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/.matplotlib",
        # One thread each: BLAS pools would multiply processes and address space.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--clearenv",
    ]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += _system_binds()
    args += ["--ro-bind", sources.prefix, interpreter.prefix]
    if sources.packages:
        args += ["--ro-bind", sources.packages, INSIDE_PACKAGES]
    args += ["--ro-bind", sources.repl, INSIDE_REPL]
    args += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    args += ["--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    args += ["--bind", sources.data, "/mnt/data", "--chdir", "/mnt/data"]
    args += ["--remount-ro", "/"]
    args += [interpreter.executable, "-I", "-S", "-B", INSIDE_REPL, config_json]
    return args


def check_bwrap(bwrap_setting: str | None, probe_uid: int | None = None) -> str:
    """The bwrap executable, once it has been seen to make a namespace; else SandboxUnavailable."""
    bwrap = bwrap_setting or shutil.which("bwrap")
    if bwrap_setting and not os.access(bwrap_setting, os.X_OK):
        raise SandboxUnavailable(
            f"bubblewrap was configured at {bwrap_setting} (CODE_INTERPRETER_BWRAP), "
            "which is not an executable"
        )
    if not bwrap or not os.access(bwrap, os.X_OK):
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; install the 'bubblewrap' package "
            "(apt-get install bubblewrap) to use code_interpreter"
        )
    if os.geteuid() == 0:
        missing = [t for t in ("unshare", "mount", "setpriv") if shutil.which(t) is None]
        if missing:
            raise SandboxUnavailable(
                f"the service runs as root and needs {', '.join(missing)} (util-linux) to start "
                "each sandbox as an unprivileged user"
            )
    probe = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    probe += [*_system_binds(), "--proc", "/proc", "--dev", "/dev", "true"]
    if probe_uid is not None:
        # As the sessions will run it: unprivileged user namespaces must be allowed.
        probe = [
            "setpriv",
            f"--reuid={probe_uid}",
            f"--regid={probe_uid}",
            "--clear-groups",
            *probe,
        ]
    try:
        result = subprocess.run(probe, capture_output=True, timeout=30, env={}, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(f"bubblewrap could not be started: {exc}") from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        raise SandboxUnavailable(
            "bubblewrap cannot create the sandbox's namespaces here (user namespaces may be "
            f"disabled: kernel.unprivileged_userns_clone / user.max_user_namespaces): "
            f"{detail[-1] if detail else 'exit ' + str(result.returncode)}"
        )
    return bwrap
