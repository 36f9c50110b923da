"""The routing config: backends, model aliases and timeouts, loaded and checked at start.

With no config file every model goes to the Ollama at OLLAMA_HOST, or to the
OpenAI-compatible server at SOVEREIGN_BACKEND_URL when that is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from services.sovereign.settings import DEFAULT_EMBEDDING, Settings, ollama_url

__all__ = ["BackendConfig", "ConfigError", "RoutingConfig", "Timeouts", "load_routing_config"]


class ConfigError(Exception):
    """A routing config that cannot be used; its message is one readable line."""


class Timeouts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connect: PositiveFloat = 5.0
    # Generous by default: a cold Ollama loads the model before the first token.
    first_token: PositiveFloat = 300.0
    idle: PositiveFloat = 60.0
    response: PositiveFloat = 900.0
    # A stream's headers wait this long for the first token, so early failures get a real
    # HTTP status; after that the stream starts and SSE comments keep it alive until then.
    hold_headers: PositiveFloat = 5.0
    heartbeat: PositiveFloat = 10.0


class BackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["ollama", "openai"]
    # An Ollama backend without a url follows OLLAMA_HOST, as the ollama CLI does.
    url: str = ""
    api_key: str | None = None
    api_key_env: str | None = None
    # Model names (fnmatch patterns) this backend serves; unmatched names go to the default.
    models: list[str] = Field(default_factory=list)
    keep_alive: str | int | None = None
    num_ctx: int | None = Field(None, gt=0)
    # As read, only the fields set here override the config-wide timeouts; once loaded,
    # the merged timeouts this backend runs with.
    timeouts: Timeouts = Field(default_factory=Timeouts)

    def key(self) -> str | None:
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or self.api_key
        return self.api_key


class RoutingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    default_backend: str | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)


def _implicit_backends(settings: Settings) -> dict[str, BackendConfig]:
    if settings.backend_url:
        return {"default": BackendConfig(type="openai", url=settings.backend_url)}
    return {"ollama": BackendConfig(type="ollama", url=ollama_url(settings.ollama_host))}


def load_routing_config(settings: Settings) -> RoutingConfig:
    """Read SOVEREIGN_CONFIG (if any), fill in the implicit backends, and check it all."""
    raw: object = {}
    if settings.config_path:
        path = Path(settings.config_path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read routing config {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            where = f" (line {line + 1})" if line is not None else ""
            raise ConfigError(f"routing config {path} is not valid YAML{where}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"routing config {path} must be a mapping")
    try:
        config = RoutingConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"routing config {settings.config_path}: {problems}") from exc
    if not config.backends:
        config.backends = _implicit_backends(settings)
    if settings.embedding_model and DEFAULT_EMBEDDING not in config.aliases:
        config.aliases[DEFAULT_EMBEDDING] = settings.embedding_model
    if config.default_backend is None:
        config.default_backend = next(iter(config.backends))
    for backend in config.backends.values():
        if not backend.url and backend.type == "ollama":
            backend.url = ollama_url(settings.ollama_host)
    _check(config, settings.config_path)
    for backend in config.backends.values():
        overrides = backend.timeouts.model_dump(include=backend.timeouts.model_fields_set)
        backend.timeouts = config.timeouts.model_copy(update=overrides)
    return config


def _check(config: RoutingConfig, path: str | None) -> None:
    problems: list[str] = []
    if config.default_backend not in config.backends:
        problems.append(f"default_backend: unknown backend {config.default_backend!r}")
    for name, backend in config.backends.items():
        if not backend.url:
            problems.append(f"backends.{name}.url: required for an OpenAI-compatible backend")
        elif not backend.url.startswith(("http://", "https://")):
            problems.append(f"backends.{name}.url: must start with http:// or https://")
    for alias in config.aliases:
        seen = [alias]
        target = config.aliases[alias]
        while target in config.aliases:
            if target in seen:
                problems.append(f"aliases.{alias}: cycle {' -> '.join([*seen, target])}")
                break
            seen.append(target)
            target = config.aliases[target]
    if problems:
        raise ConfigError(f"routing config {path}: {'; '.join(problems)}")
