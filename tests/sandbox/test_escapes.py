"""Code in the sandbox cannot reach the network, the host's files, secrets or privileges."""

from __future__ import annotations

import os
import socket
import sqlite3
import uuid

import pytest

from services.assistants.sandbox import SandboxPool


async def run_ok(pool: SandboxPool, key: str, code: str) -> str:
    result = await pool.execute(key, code)
    assert result.error is None, f"{result.error}\n{result.logs}"
    return result.logs.strip()


async def test_no_connection_to_a_host_listener(pool: SandboxPool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        code = f"""
import socket
for host in ("127.0.0.1", "localhost", "::1"):
    try:
        socket.create_connection((host, {port}), timeout=2).close()
        print(host, "CONNECTED")
    except OSError as exc:
        print(host, "refused", type(exc).__name__)
print(sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
"""
        out = await run_ok(pool, "net", code)
        assert "CONNECTED" not in out
        assert out.count("refused") == 3
        # Only the sandbox's own loopback exists: no interface leads out.
        assert out.splitlines()[-1] == "['lo']"
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


async def test_no_connection_to_a_host_abstract_unix_socket(pool: SandboxPool) -> None:
    name = f"\0sandbox-test-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(name)
    listener.listen(1)
    try:
        code = f"""
import socket
s = socket.socket(socket.AF_UNIX)
try:
    s.connect({name!r})
    print("CONNECTED")
except OSError as exc:
    print("refused", type(exc).__name__)
"""
        assert (await run_ok(pool, "unix", code)).startswith("refused")
    finally:
        listener.close()


async def test_host_files_and_the_database_are_not_visible(pool: SandboxPool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    database = tmp_path / "service.db"
    with sqlite3.connect(database) as conn:
        conn.execute("create table secret (v text)")
        conn.execute("insert into secret values ('sqlite-secret-value')")
    project_db = os.path.abspath("data/sovereign_assistant.db")
    targets = [
        "/etc/shadow",
        "/etc/passwd",
        str(database),
        project_db,
        os.path.abspath("pyproject.toml"),
        os.path.expanduser("~/.bash_history"),
        "/proc/1/root/etc/shadow",
    ]
    code = f"""
import os
for path in {targets!r}:
    try:
        with open(path, "rb") as f:
            print(path, "READ", f.read(40))
    except OSError as exc:
        print(path, "denied", type(exc).__name__)
print(os.listdir("/"))
print(os.path.exists(os.path.expanduser("~root")), os.listdir("/root"))
print(os.listdir("/etc") if os.path.exists("/etc") else [])
"""
    out = await run_ok(pool, "files", code)
    assert "READ" not in out, out
    assert out.count("denied") == len(targets)
    lines = out.splitlines()
    assert "home" not in lines[-3]
    # /root holds only the path to the interpreter, nothing else of the home.
    assert lines[-2].endswith("['.pyenv']") or "[]" in lines[-2]
    # Of /etc, at most the font configuration.
    assert lines[-1] in ("[]", "['fonts']")


async def test_the_service_environment_is_not_visible(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"key-{uuid.uuid4().hex}"
    monkeypatch.setenv("API_KEY", secret)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{secret}.db")
    code = """
import os, glob
print(sorted(os.environ))
found = []
for path in glob.glob("/proc/*/environ"):
    try:
        found.append(open(path, "rb").read())
    except OSError:
        pass
print(b"".join(found).decode(errors="replace"))
"""
    out = await run_ok(pool, "env", code)
    assert secret not in out
    assert "API_KEY" not in out
    assert "DATABASE_URL" not in out


async def test_another_sessions_data_is_not_visible(pool: SandboxPool) -> None:
    secret = uuid.uuid4().hex
    await run_ok(pool, "owner", f"open('/mnt/data/secret.txt', 'w').write({secret!r})")
    owner_dir = pool.sessions["owner"].data_dir
    assert (owner_dir / "secret.txt").read_text() == secret
    code = f"""
import os
print(os.listdir("/mnt/data"))
for path in ({str(owner_dir / "secret.txt")!r}, "/mnt/data/secret.txt"):
    try:
        print("READ", open(path).read())
    except OSError as exc:
        print("denied", type(exc).__name__)
hits = []
for root, dirs, files in os.walk("/", onerror=lambda e: None):
    if root.startswith(("/proc", "/usr", "/root", "/opt", "/sys")):
        dirs[:] = []
        continue
    hits += [f for f in files if f == "secret.txt"]
print("hits", hits)
"""
    out = await run_ok(pool, "other", code)
    assert secret not in out
    assert out.splitlines()[0] == "[]"
    assert out.count("denied") == 2
    assert out.splitlines()[-1] == "hits []"


async def test_nothing_outside_mnt_data_and_tmp_is_writable(pool: SandboxPool) -> None:
    interpreter = pool.interpreter
    targets = [
        "/escape.txt",
        "/usr/escape.txt",
        "/etc/escape.txt",
        "/opt/sandbox/repl.py",
        os.path.join(interpreter.prefix, "escape.txt"),
        "/opt/sandbox/site-packages/escape.txt",
        "/root/escape.txt",
        "/dev/escape.txt",
        "/proc/sys/kernel/hostname",
        # Kernel files owned by root: only opened for writing, never written, so that a
        # failure of this test cannot change the host.
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/kernel/modprobe",
        "/proc/sysrq-trigger",
        "/sys/kernel/uevent_helper",
    ]
    code = f"""
import os
for path in {targets!r}:
    flags = os.O_WRONLY if path.startswith(("/proc/", "/sys/")) else os.O_WRONLY | os.O_CREAT
    try:
        os.close(os.open(path, flags, 0o644))
        print(path, "WROTE")
    except OSError as exc:
        print(path, "denied", type(exc).__name__)
open("/mnt/data/ok.txt", "w").write("ok")
open("/tmp/ok.txt", "w").write("ok")
print(open("/mnt/data/ok.txt").read(), open("/tmp/ok.txt").read())
"""
    out = await run_ok(pool, "write", code)
    assert "WROTE" not in out, out
    assert out.count("denied") == len(targets)
    assert out.splitlines()[-1] == "ok ok"
    assert not os.path.exists(os.path.join(interpreter.prefix, "escape.txt"))
    assert not os.path.exists("/escape.txt")


async def test_no_privileges_can_be_gained(pool: SandboxPool) -> None:
    code = """
import ctypes, os
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
print("uid", os.getuid(), os.geteuid(), os.getgid())
for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    print(cap, int(status[cap].strip(), 16))
print("NoNewPrivs", status["NoNewPrivs"].strip())
for attempt in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.chroot("/tmp")):
    try:
        attempt()
        print("GAINED")
    except OSError as exc:
        print("denied", type(exc).__name__)
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS = 0x10000000, 0x40000000, 0x00020000
for flag in (CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS):
    print("unshare", flag, "GAINED" if libc.unshare(flag) == 0 else "denied")
MS_BIND = 4096
print("mount", "GAINED" if libc.mount(b"/tmp", b"/mnt", None, MS_BIND, None) == 0 else "denied")
"""
    out = await run_ok(pool, "privileges", code)
    assert "GAINED" not in out, out
    lines = out.splitlines()
    assert lines[0] == "uid 1000 1000 1000"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert f"{cap} 0" in lines
    assert "NoNewPrivs 1" in lines
    assert out.count("denied") == 3 + 3 + 1
