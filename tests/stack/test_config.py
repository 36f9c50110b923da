"""stack.yaml validation: every problem at once, with its path; ordering; interpolation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stack.config import ConfigError, dependency_order, load
from stack.interpolate import InterpolationError, interpolate_env, interpolate_refs


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


BAD = """
services:
  api:
    command: run-api
    port: 70000
    colour: blue
    depends_on:
      db: {condition: healthy}
      ghost: {}
    env:
      URL: ${services.nowhere.url}
      KEY: ${MISSING_VAR}
  db:
    command: run-db
    depends_on: [cache]
  cache:
    command: run-cache
    depends_on: [db]
    probe: {http: /health, tcp: true}
"""


def test_every_problem_is_reported_at_once_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, BAD), environ={})
    problems = dict(err.value.problems)
    assert "less than or equal to 65535" in problems["services.api.port"]
    assert problems["services.api.colour"] == "unknown key"
    assert "MISSING_VAR" in problems["services.api.env.KEY"]
    assert "exactly one of http, tcp, command" in problems["services.cache.probe"]
    # api failed its schema, so its references are not checked; db/cache are
    assert any("cycle" in m for p, m in err.value.problems if p.endswith("depends_on"))
    assert len(err.value.problems) >= 5


def test_semantic_problems(tmp_path: Path) -> None:
    text = """
services:
  api:
    command: run-api
    port: 8000
    depends_on:
      db: {condition: healthy}
      ghost: {}
    env:
      URL: ${services.nowhere.url}
      SELF: ${self.fd}
  db:
    command: run-db
  runtime:
    adopt: true
  bare:
    port: 9000
  held:
    command: serve --fd ${self.fd}
    port: 9001
    socket: inherit
    probe: {tcp: true}
"""
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), environ={})
    problems = dict(err.value.problems)
    assert problems["services.api.depends_on.ghost"] == "unknown service 'ghost'"
    assert "needs a probe on 'db'" in problems["services.api.depends_on.db.condition"]
    assert "unknown service" in problems["services.api.env.URL"]
    assert "socket: inherit" in problems["services.api.env.SELF"]
    assert problems["services.bare.command"].startswith("a command is required")
    assert "probe" in problems["services.runtime.adopt"]
    assert "use an http or command probe" in problems["services.held.probe.tcp"]


def test_valid_file_with_env_file_and_defaults(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("API_PORT=9100\nFROM_FILE=file\n")
    text = """
services:
  api:
    command: serve --port ${self.port} --upstream ${services.db.url}
    port: ${API_PORT}
    restart: no
    stop_signal: INT
    env:
      A: ${FROM_FILE}
      B: ${UNSET:-fallback}
      C: 5
      D: $${LITERAL}
    depends_on:
      db: {condition: healthy}
  db:
    command: db
    port: 9200
    probe: {tcp: true, interval: 0.5}
"""
    cfg = load(write(tmp_path, text), environ={"FROM_FILE": "process"})
    api = cfg.services["api"]
    assert api.port == 9100  # from .env, coerced to int
    assert api.env == {"A": "process", "B": "fallback", "C": "5", "D": "$${LITERAL}"}
    assert api.restart.policy == "no"  # YAML's bare `no` is False
    assert api.stop_signal == "SIGINT"
    assert cfg.services["db"].probe and cfg.services["db"].probe.interval == 0.5


def test_variants_are_validated_with_their_own_path(tmp_path: Path) -> None:
    text = """
services:
  runtime:
    port: 11434
    variants:
      - name: ollama
        when: {installed: ollama}
        command: ollama serve
        probe: {http: /api/tags}
        bogus: 1
      - command: embedded
        probe: {http: /health}
"""
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), environ={})
    problems = dict(err.value.problems)
    assert problems["services.runtime.variants[0].bogus"] == "unknown key"
    assert problems["services.runtime.variants[1].name"] == "a variant needs a name"


def test_dependency_order_and_cycles() -> None:
    order, cycles = dependency_order({"c": ["b"], "b": ["a"], "a": [], "d": []})
    assert order == ["a", "b", "c", "d"]
    assert cycles == []
    _, cycles = dependency_order({"a": ["b"], "b": ["c"], "c": ["a"]})
    assert cycles == [["a", "b", "c", "a"]]


def test_interpolation() -> None:
    env = {"HOME_DIR": "/h", "EMPTY": ""}
    stack = {"dir": "/s", "python": "/py"}
    assert interpolate_env("${HOME_DIR}/x ${stack.dir}", env, stack) == "/h/x /s"
    assert interpolate_env("${EMPTY:-d} ${NOPE:-}", env, stack) == "d "
    assert interpolate_env("${services.a.url} $$x", env, stack) == "${services.a.url} $$x"
    with pytest.raises(InterpolationError, match="NOPE"):
        interpolate_env("${NOPE}", env, stack)
    with pytest.raises(InterpolationError, match="unknown reference"):
        interpolate_env("${stack.nope}", env, stack)
    values = {("services", "a", "url"): "http://a", ("self", "port"): "81"}
    assert (
        interpolate_refs("${services.a.url}:${self.port} $$x", values.__getitem__)
        == "http://a:81 $x"
    )


def test_cli_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    out = subprocess.run(
        [sys.executable, "-m", "stack", "up", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 2, out.stderr
    assert "nothing started" in out.stderr
    assert "services.api.port" in out.stderr and "services.api.colour: unknown key" in out.stderr
    assert not (tmp_path / ".stack").exists()


def test_stack_config_prints_the_resolved_configuration(tmp_path: Path) -> None:
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    path = write(
        tmp_path,
        f"""
services:
  db:
    command: db --port ${{self.port}}
    port: {taken}
  api:
    command: api
    env: {{DB: "${{services.db.url}}", MODE: "${{MODE:-dev}}"}}
""",
    )
    try:
        out = subprocess.run(
            [sys.executable, "-m", "stack", "config", "--file", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        blocker.close()
    assert out.returncode == 0, out.stderr
    moved = int(out.stdout.split(f"(asked {taken})")[0].split("# db: ")[1])
    assert moved > taken
    assert f"command: db --port {moved}" in out.stdout
    assert f"DB: http://127.0.0.1:{moved}" in out.stdout and "MODE: dev" in out.stdout
