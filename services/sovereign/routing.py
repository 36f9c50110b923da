"""Which backend answers a model name, and under which name it knows the model."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from services.sovereign.backends import Backend
from services.sovereign.config import RoutingConfig

__all__ = ["Route", "Router"]


@dataclass(frozen=True, slots=True)
class Route:
    backend: Backend
    model: str


class Router:
    """Aliases first (`gpt-4o` -> `qwen2.5-coder:7b`), then an explicit `backend/model`
    prefix, then the first backend whose `models` patterns match, else the default."""

    def __init__(self, config: RoutingConfig, backends: dict[str, Backend]) -> None:
        # Alias chains end once: cycles were refused when the config was loaded.
        self.aliases = {alias: _final(config.aliases, alias) for alias in config.aliases}
        self.backends = backends
        self.default = backends[config.default_backend or next(iter(backends))]

    def resolve(self, requested: str) -> Route:
        model = self.aliases.get(requested, requested)
        prefix, sep, rest = model.partition("/")
        # Only a known backend name is a prefix: Ollama models such as hf.co/x/y have slashes.
        if sep and prefix in self.backends and rest:
            return Route(self.backends[prefix], rest)
        for backend in self.backends.values():
            if any(fnmatchcase(model, pattern) for pattern in backend.config.models):
                return Route(backend, model)
        return Route(self.default, model)


def _final(aliases: dict[str, str], model: str) -> str:
    while model in aliases:
        model = aliases[model]
    return model
