"""`${...}` interpolation in stack.yaml: environment variables at load time, other services'
resolved values (port, URL) once ports are known."""

# Syntax (documented in stack.yaml too):
#   ${VAR}                  environment variable (the process env or the .env file); an error
#                           when it is not set
#   ${VAR:-default}         the variable, or `default` when it is unset or empty
#   ${stack.dir}            the directory holding stack.yaml
#   ${stack.python}         the Python interpreter running the stack (the venv's python)
#   ${services.NAME.port}   NAME's resolved port (after adoption / moving), likewise .host, .url
#   ${services.NAME.vars.K} a value NAME declares under `vars:` (the chosen variant's, if any)
#   ${self.port}            the service's own resolved port, likewise .host, .url, .fd
#   $$                      a literal `$`

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["InterpolationError", "find_references", "interpolate_env", "interpolate_refs"]

# `$$` first so that an escaped dollar is never read as the start of a reference.
_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REF_ROOTS = ("services.", "self.")


class InterpolationError(ValueError):
    """A reference that cannot be resolved; the message names the reference."""


def _is_ref(expr: str) -> bool:
    return expr.startswith(_REF_ROOTS)


def interpolate_env(value: str, env: Mapping[str, str], stack: Mapping[str, str]) -> str:
    """Replace env and `stack.` references; `services.`/`self.` ones are kept for later."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$$"  # kept escaped until the last pass
        expr = match.group(1).strip()
        if _is_ref(expr):
            return match.group(0)
        if expr.startswith("stack."):
            key = expr.removeprefix("stack.")
            if key not in stack:
                raise InterpolationError(f"unknown reference ${{{expr}}}")
            return stack[key]
        name, sep, default = expr.partition(":-")
        if not _ENV_NAME.match(name):
            raise InterpolationError(f"bad variable name in ${{{expr}}}")
        current = env.get(name)
        if sep:
            return current if current else default
        if current is None:
            raise InterpolationError(f"environment variable {name} is not set (in ${{{expr}}})")
        return current

    return _TOKEN.sub(repl, value)


def find_references(value: str) -> list[tuple[str, ...]]:
    """The `services.`/`self.` references in a string, split on dots."""
    return [
        tuple(m.group(1).strip().split("."))
        for m in _TOKEN.finditer(value)
        if m.group(0) != "$$" and _is_ref(m.group(1).strip())
    ]


def interpolate_refs(value: str, lookup: Callable[[tuple[str, ...]], str]) -> str:
    """Replace `services.`/`self.` references through `lookup` and unescape `$$`."""

    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group(1).strip()
        if not _is_ref(expr):
            raise InterpolationError(f"unresolved reference ${{{expr}}}")
        return lookup(tuple(expr.split(".")))

    return _TOKEN.sub(repl, value)


def walk_strings(data: Any, fn: Callable[[str, tuple[Any, ...]], str], path: tuple = ()) -> Any:
    """Apply `fn(string, path)` to every string in a YAML tree, returning a new tree."""
    if isinstance(data, str):
        return fn(data, path)
    if isinstance(data, dict):
        return {k: walk_strings(v, fn, (*path, k)) for k, v in data.items()}
    if isinstance(data, list):
        return [walk_strings(v, fn, (*path, i)) for i, v in enumerate(data)]
    return data
