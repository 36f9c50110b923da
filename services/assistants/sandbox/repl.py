"""The long-lived Python process inside a sandbox: runs each piece of code it is sent.

Standard library only: it starts before any user code and must not import the service.
Requests are JSON lines on the request fd; the code's stdout and stderr go to fd 1 as they
are written, and each execution ends with a marker line the host waits for:
``\\x1e<token>\\x1f<json status>\\n``. Figures left open by matplotlib are sent back as
PNG bytes (base64) in that status.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import resource
import sys
import traceback
from typing import Any

MAX_FIGURES = 10


def _apply_limits(limits: dict[str, int]) -> None:
    # Hard and soft together: nothing the code does later can raise them again.
    for name, value in limits.items():
        which = getattr(resource, name)
        resource.setrlimit(which, (value, value))


def _cpu_budget(seconds: int) -> None:
    """Let this execution use ``seconds`` more CPU time; SIGXCPU ends the process after."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _figures() -> list[str]:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    out: list[str] = []
    try:
        for number in pyplot.get_fignums()[:MAX_FIGURES]:
            buffer = io.BytesIO()
            pyplot.figure(number).savefig(buffer, format="png", dpi=100)
            out.append(base64.b64encode(buffer.getvalue()).decode())
    finally:
        pyplot.close("all")
    return out


def _run(code: str, namespace: dict[str, Any]) -> str | None:
    """Run ``code`` as a notebook cell would: the last expression's value is printed."""
    try:
        tree = ast.parse(code, "<code>", "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, "<code>", "exec"), namespace)
        if last is not None:
            value = eval(compile(last, "<code>", "eval"), namespace)
            if value is not None:
                print(repr(value))
        return None
    except SystemExit as exc:
        return f"SystemExit: {exc.code}"
    except BaseException as exc:
        # The traceback without this file's own frame, as a REPL would show it.
        frames = traceback.extract_tb(exc.__traceback__)[1:]
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_list(frames)))
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def main() -> None:
    config = json.loads(sys.argv[1])
    sys.path.extend(config.get("path", []))
    _apply_limits(config.get("limits", {}))
    # Requests arrive on a private fd; the code sees an empty stdin.
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(1, 2)
    # These live as long as the process.
    sys.stdout = io.TextIOWrapper(
        os.fdopen(1, "wb", buffering=0, closefd=False), write_through=True
    )
    sys.stderr = io.TextIOWrapper(
        os.fdopen(2, "wb", buffering=0, closefd=False), write_through=True
    )
    sys.stdin = os.fdopen(os.open(os.devnull, os.O_RDONLY))
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    reader = io.BufferedReader(requests)  # type: ignore[arg-type]
    while True:
        line = reader.readline()
        if not line:
            return
        request = json.loads(line)
        _cpu_budget(int(request.get("cpu_seconds", 60)))
        error = _run(request["code"], namespace)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            images = _figures()
        except Exception as exc:  # a broken figure must not end the session
            images = []
            error = error or f"Could not render the figures: {exc}"
        status = json.dumps({"error": error, "images": images})
        out.write(b"\x1e" + request["token"].encode() + b"\x1f" + status.encode() + b"\n")


if __name__ == "__main__":
    main()
