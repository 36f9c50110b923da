"""The Procfile runs the same processes as stack.yaml (for `honcho start`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from honcho.environ import parse_procfile

from stack.config import Service, load

ROOT = Path(__file__).resolve().parents[2]


def _module_and_port(command: str) -> tuple[str, str | None]:
    words = shlex.split(command)
    module = words[words.index("-m") + 1]
    port = words[words.index("--port") + 1] if "--port" in words else None
    return module, port


def _default_form(
    cfg_services: dict[str, Service], variants: dict[str, list[Service]]
) -> dict[str, Service]:
    # the Procfile is static: for a service with variants it runs the last one, the fallback
    # a machine without Ollama gets
    return {n: (variants[n][-1] if n in variants else s) for n, s in cfg_services.items()}


def test_procfile_matches_stack_yaml() -> None:
    cfg = load(ROOT / "stack.yaml", environ={})
    procfile = parse_procfile((ROOT / "Procfile").read_text()).processes
    services = _default_form(cfg.services, cfg.variants)
    assert list(procfile) == list(services)  # same names, same (dependency) order
    for name, svc in services.items():
        line = procfile[name]
        steps = [s.strip() for s in line.split("&&")]
        # pre-start tasks come first, in order, then the service itself
        for task, step in zip(svc.pre_start, steps, strict=False):
            assert task.run and shlex.split(task.run)[1:] == shlex.split(step)[1:]
        assert len(steps) == len(svc.pre_start) + 1, line
        main = " ".join(w for w in shlex.split(steps[-1]) if "=" not in w.split("/")[0])
        assert svc.command
        module, _ = _module_and_port(svc.command)
        assert _module_and_port(main) == (module, str(svc.port)), (name, line)
        # every URL another service is given points at the port stack.yaml asks for
        for dep in svc.depends_on:
            assert f"127.0.0.1:{services[dep].port}" in line, (name, dep)
