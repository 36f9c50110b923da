"""stack.spec mirrors stack.config's models: same fields, same defaults, and a checked stack
file survives the trip to the supervisor (JSON) unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from stack import config, spec

PAIRS = [
    (config.Probe, spec.Probe),
    (config.Dependency, spec.Dependency),
    (config.Restart, spec.Restart),
    (config.AssistantSpec, spec.AssistantSpec),
    (config.OllamaPull, spec.OllamaPull),
    (config.Provision, spec.Provision),
    (config.Task, spec.Task),
    (config.When, spec.When),
    (config.Service, spec.Service),
]
ROOT = Path(__file__).resolve().parents[2]


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


@pytest.mark.parametrize(("model", "plain"), PAIRS, ids=[p[1].__name__ for p in PAIRS])
def test_fields_and_defaults_match(model: Any, plain: Any) -> None:
    fields = {f.name: f for f in dataclasses.fields(plain)}
    assert list(fields) == list(model.model_fields)
    for name, info in model.model_fields.items():
        want = info.get_default(call_default_factory=True)
        got = _default(fields[name])
        if info.is_required():
            assert got is dataclasses.MISSING, name
        elif hasattr(want, "model_dump"):
            assert spec.to_plain(got) == want.model_dump(), name
        else:
            assert got == want, name


def test_the_repo_stack_file_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.load(ROOT / "stack.yaml", environ={"STACK_RUNTIME_URL": "http://x/v1"})
    again = spec.StackConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again == cfg
    runtime = again.variants["runtime"]
    assert [v.name for v in runtime] == ["external", "ollama", "embedded"]
    assert runtime[1].probe and runtime[1].probe.kind == "http"
    provision = again.services["assistants"].post_healthy[0].provision
    assert provision and provision.assistants[0].name == "CEO"
