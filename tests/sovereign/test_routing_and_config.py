"""Routing config: loading, validation, routing by name; the CLI's one-line config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.sovereign.backends import build_backend
from services.sovereign.config import ConfigError, load_routing_config
from services.sovereign.routing import Router
from services.sovereign.settings import DEFAULT_EMBEDDING, Settings, ollama_url
from tests.fakes.ollama_upstream import run_ollama_upstream
from tests.fakes.openai_upstream import run_openai_upstream
from tests.fakes.process import ROOT, stop_process
from tests.fakes.sovereign import run_sovereign
from tests.support.processes import free_port, wait_http

pytestmark = pytest.mark.timeout(60)

CONFIG = """
default_backend: ollama
timeouts: {connect: 3, idle: 20}
backends:
  ollama: {type: ollama, url: "http://127.0.0.1:11434", keep_alive: 5m}
  vllm:
    type: openai
    url: http://gpu:8000
    models: ["meta-llama/*"]
    timeouts: {idle: 90}
aliases:
  gpt-4o: qwen2.5-coder:7b
  gpt-4o-mini: small
  small: vllm/phi-3
"""


def settings_for(tmp_path: Path, text: str, **extra: str) -> Settings:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return Settings(config_path=str(path), **extra)


def router_for(settings: Settings) -> Router:
    config = load_routing_config(settings)
    client = httpx.AsyncClient()
    return Router(config, {n: build_backend(n, b, client) for n, b in config.backends.items()})


def test_routing_by_alias_prefix_pattern_and_default(tmp_path: Path) -> None:
    router = router_for(settings_for(tmp_path, CONFIG))
    cases = {
        "gpt-4o": ("ollama", "qwen2.5-coder:7b"),
        "gpt-4o-mini": ("vllm", "phi-3"),  # alias of an alias, then a backend prefix
        "meta-llama/Llama-3-8B": ("vllm", "meta-llama/Llama-3-8B"),
        "hf.co/bartowski/x:Q4": ("ollama", "hf.co/bartowski/x:Q4"),  # not a backend prefix
        "llama3.2": ("ollama", "llama3.2"),
    }
    for requested, (backend, model) in cases.items():
        route = router.resolve(requested)
        assert (route.backend.name, route.model) == (backend, model), requested


def test_timeouts_merge_per_backend(tmp_path: Path) -> None:
    config = load_routing_config(settings_for(tmp_path, CONFIG))
    vllm = config.backends["vllm"].timeouts
    assert (vllm.connect, vllm.idle, vllm.first_token) == (3, 90, 300)
    assert config.backends["ollama"].timeouts.idle == 20


def test_ollama_backend_without_url_follows_ollama_host(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "backends: {local: {type: ollama}}", ollama_host="h:1")
    assert load_routing_config(settings).backends["local"].url == "http://h:1"


def test_implicit_backends() -> None:
    config = load_routing_config(Settings(ollama_host="0.0.0.0"))
    assert config.backends["ollama"].url == "http://127.0.0.1:11434"
    config = load_routing_config(Settings(backend_url="http://127.0.0.1:9000/v1"))
    assert list(config.backends) == ["default"] and config.backends["default"].type == "openai"


@pytest.mark.parametrize(
    ("value", "url"),
    [
        ("127.0.0.1:11434", "http://127.0.0.1:11434"),
        ("localhost", "http://localhost:11434"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("http://10.0.0.5:9999/", "http://10.0.0.5:9999"),
    ],
)
def test_ollama_host_forms(value: str, url: str) -> None:
    assert ollama_url(value) == url


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("backends: {x: {type: tgi, url: 'http://h'}}", "backends.x.type"),
        ("backends: {x: {type: openai, url: 'h:1'}}", "must start with http"),
        ("backends: {x: {type: openai}}", "backends.x.url: required"),
        ("default_backend: nope", "unknown backend 'nope'"),
        ("aliases: {a: b, b: a}", "cycle"),
        ("timeouts: {idle: -1}", "timeouts.idle"),
        ("bogus: 1", "bogus"),
        ("backends: [", "not valid YAML"),
        ("- a list", "must be a mapping"),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match="routing config") as info:
        load_routing_config(settings_for(tmp_path, text))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_cli_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("backends: {x: {type: tgi, url: 'http://h'}}\n")
    env = {**os.environ, "SOVEREIGN_CONFIG": str(path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "services.sovereign", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sovereign: routing config")
    missing = subprocess.run(
        [sys.executable, "-m", "services.sovereign"],
        env={**env, "SOVEREIGN_CONFIG": str(tmp_path / "absent.yaml")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2 and "cannot read routing config" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_port = subprocess.run(
        [sys.executable, "-m", "services.sovereign"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "SOVEREIGN_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad_port.returncode == 2
    assert bad_port.stderr.strip().startswith("sovereign: bad setting: SOVEREIGN_PORT:")


def test_two_backends_one_proxy_with_key() -> None:
    """Aliases route unchanged client code to a local model; the key is required if set."""
    with (
        run_ollama_upstream(
            {"models": ["qwen2.5-coder:7b"], "responses": [{"text": "from ollama", "repeat": True}]}
        ) as ollama,
        run_openai_upstream(
            {"models": ["phi-3"], "responses": [{"text": "from openai", "repeat": True}]}
        ) as other,
    ):
        config = {
            "backends": {
                "ollama": {"type": "ollama", "url": ollama.url},
                "other": {"type": "openai", "url": other.url, "models": ["phi-*"]},
            },
            "aliases": {"gpt-4o": "qwen2.5-coder:7b"},
        }
        with run_sovereign(config=config, env={"SOVEREIGN_API_KEY": "s3cret"}) as sv:
            body = {"messages": [{"role": "user", "content": "hi"}]}
            url = sv.base_url + "/chat/completions"
            assert httpx.post(url, json={**body, "model": "gpt-4o"}).status_code == 401
            wrong = httpx.post(url, json={**body, "model": "gpt-4o"}, headers=auth("nope"))
            assert wrong.status_code == 401
            assert wrong.json()["error"]["code"] == "invalid_api_key"
            answers = {
                model: httpx.post(url, json={**body, "model": model}, headers=auth("s3cret"))
                for model in ("gpt-4o", "phi-3")
            }
            assert answers["gpt-4o"].json()["choices"][0]["message"]["content"] == "from ollama"
            assert answers["phi-3"].json()["choices"][0]["message"]["content"] == "from openai"
            assert answers["phi-3"].headers["x-sovereign-backend"] == "other"
            models = httpx.get(sv.base_url + "/models", headers=auth("s3cret")).json()["data"]
            assert {m["id"]: m["owned_by"] for m in models} == {
                "qwen2.5-coder:7b": "ollama",
                "phi-3": "other",
                "gpt-4o": "ollama",
            }
            health = httpx.get(sv.url + "/health")  # no key needed
            assert health.status_code == 200 and health.json()["status"] == "ok"
            assert set(health.json()["backends"]) == {"ollama", "other"}
            assert other.chat_requests()[-1]["authorization"] is None  # the key is not leaked


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_unreachable_backend() -> None:
    with run_sovereign(env={"OLLAMA_HOST": "127.0.0.1:9"}) as sv:
        health = httpx.get(sv.url + "/health", timeout=10).json()
        assert health["status"] == "degraded"
        assert health["backends"]["ollama"]["reachable"] is False
        assert "unreachable" in health["backends"]["ollama"]["error"]
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        for stream in (False, True):
            response = httpx.post(
                sv.base_url + "/chat/completions", json={**body, "stream": stream}, timeout=10
            )
            assert response.status_code == 502
            assert response.json()["error"]["code"] == "upstream_unreachable"
        assert httpx.get(sv.base_url + "/models", timeout=10).json()["data"] == []


def test_example_config_loads_and_routes() -> None:
    example = ROOT / "services" / "sovereign" / "routing.example.yaml"
    router = router_for(Settings(config_path=str(example)))
    route = router.resolve("gpt-3.5-turbo")
    assert (route.backend.name, route.model) == ("embedded", "gemma-3-270m")
    assert router.resolve("gpt-4o").model == "qwen2.5-coder:7b"


def test_serves_on_host_and_port_from_the_environment() -> None:
    port = free_port()  # a tiny race with other processes, acceptable in a test
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOVEREIGN_PORT": str(port)}
    env["OLLAMA_HOST"] = "127.0.0.1:9"
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.sovereign", "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_http(url, timeout=20, proc=proc)
        health = httpx.get(url, timeout=5).json()
        assert health["backends"]["ollama"]["url"] == "http://127.0.0.1:9"
    finally:
        stop_process(proc, grace=10)


def test_settings_read_only_their_own_environment_names(monkeypatch) -> None:
    # The assistants service's API_KEY (and generic HOST/PORT) must not leak into sovereign.
    monkeypatch.setenv("API_KEY", "assistants-key")
    monkeypatch.setenv("HOST", "10.0.0.1")
    monkeypatch.setenv("PORT", "1")
    settings = Settings()
    assert (settings.api_key, settings.host, settings.port) == (None, "127.0.0.1", 8080)
    monkeypatch.setenv("SOVEREIGN_API_KEY", "proxy-key")
    monkeypatch.setenv("SOVEREIGN_PORT", "9090")
    monkeypatch.setenv("SOVEREIGN_BACKEND_URL", "http://127.0.0.1:8081/v1")
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11500")
    settings = Settings()
    assert (settings.api_key, settings.port) == ("proxy-key", 9090)
    assert settings.backend_url == "http://127.0.0.1:8081/v1"
    assert settings.ollama_host == "127.0.0.1:11500"


def test_the_runtimes_embedder_answers_under_a_stable_name() -> None:
    router = router_for(Settings(embedding_model="all-minilm-l6-v2"))
    assert router.resolve(DEFAULT_EMBEDDING).model == "all-minilm-l6-v2"
    assert DEFAULT_EMBEDDING not in load_routing_config(Settings()).aliases
