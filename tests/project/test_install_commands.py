"""The README's two commands, CI and the constraints file agree, so a fresh machine installs
what CI tested."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)\n```", readme, re.S)[:2]


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test_command = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
    assert "PIP_NO_CACHE_DIR=1" in ci


def test_both_commands_install_with_the_constraints() -> None:
    for command in readme_commands():
        assert "pip install -c constraints.txt " in command, command


def test_native_runtime_is_pinned_in_the_project_and_the_constraints() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    embedded = project["project"]["optional-dependencies"]["embedded"]
    pin = next(d for d in embedded if d.startswith("llama-cpp-python"))
    assert pin.startswith("llama-cpp-python=="), pin
    assert constraints()["llama-cpp-python"] == pin.split("==")[1]


def test_every_declared_dependency_is_in_the_constraints() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project["dependencies"])
    for extra in ("test", "embedded", "interpreter"):
        declared += project["optional-dependencies"].get(extra, [])
    pins = constraints()
    missing = [
        d
        for d in declared
        if re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", d)[0]).lower() not in pins
    ]
    assert not missing, f"not in constraints.txt (regenerate it, see its header): {missing}"
