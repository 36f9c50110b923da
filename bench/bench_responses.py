"""Benchmark Responses against chat completions on the same upstream, and the grammar's cost.

    .venv/bin/python bench/bench_responses.py [--samples 30] [--no-grammar] [--database-url URL]

The upstream is the scripted OpenAI-compatible server at 2,000 tokens/s. Prints the time to
the first ``response.output_text.delta`` of a streamed ``POST /v1/responses`` against the
upstream's own time to first content chunk (median, and p90 of the pairwise differences),
and the relayed tokens/s against the upstream's. Targets: within 5 ms, >= 95 %.
Then, unless ``--no-grammar``, the embedded llama.cpp runtime's decoding tokens/s and time
to first token on one prompt with and without a grammar built from a JSON schema (greedy
decoding, in this process).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_runs import RATE, rate, sync_client, upstream_stream  # noqa: E402
from tests.fakes.openai_upstream import run_openai_upstream  # noqa: E402
from tests.support.processes import ServiceProcess, run_assistants  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "role": {"type": "string", "enum": ["admin", "editor", "viewer"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age", "role", "tags"],
}


def script(stream_tokens: int) -> list[dict[str, Any]]:
    return [
        {"match": "[ttft]", "tokens": ["t "] * 20, "first_token_delay": 0.05,
         "tokens_per_s": RATE, "repeat": True},
        {"match": "[rate]", "tokens": ["r "] * stream_tokens, "tokens_per_s": RATE,
         "repeat": True},
    ]  # fmt: skip


def responses_stream(client: httpx.Client, word: str) -> list[float]:
    """Arrival times of response.output_text.delta events, from send."""
    times: list[float] = []
    started = time.perf_counter()
    body = {"model": "fake-model", "input": word, "stream": True}
    with client.stream("POST", "/responses", json=body) as response:
        for line in response.iter_lines():
            if line == "event: response.output_text.delta":
                times.append(time.perf_counter() - started)
    return times


def bench_relay(service: ServiceProcess, upstream_url: str, samples: int) -> dict[str, Any]:
    api = sync_client(f"{service.base_url}/v1")
    direct = sync_client(upstream_url)
    for _ in range(3):  # warm both paths
        upstream_stream(direct, "[ttft]")
        responses_stream(api, "[ttft]")
    upstream_ttft, service_ttft = [], []
    for _ in range(samples):
        upstream_ttft.append(upstream_stream(direct, "[ttft]")[0])
        service_ttft.append(responses_stream(api, "[ttft]")[0])
    up_rate = rate(upstream_stream(direct, "[rate]"))
    relayed = responses_stream(api, "[rate]")
    up_median = statistics.median(upstream_ttft) * 1000
    svc_median = statistics.median(service_ttft) * 1000
    pairwise = [(s - u) * 1000 for s, u in zip(service_ttft, upstream_ttft, strict=True)]
    return {
        "chat_ttft_ms": round(up_median, 2),
        "responses_ttft_ms": round(svc_median, 2),
        "added_ttft_ms_median": round(svc_median - up_median, 2),
        "added_ttft_ms_p90": round(statistics.quantiles(pairwise, n=10)[-1], 2),
        "chat_tokens_per_s": round(up_rate),
        "responses_tokens_per_s": round(rate(relayed)),
        "responses_tokens": len(relayed),
        "responses_vs_chat_pct": round(100 * rate(relayed) / up_rate, 1),
    }


def bench_grammar(tokens: int) -> dict[str, Any]:
    """tokens/s of the embedded model, free and constrained by SCHEMA's grammar."""
    from llama_cpp import Llama

    from services.sovereign.embedded.grammar import constraint_for, llama_grammar
    from services.sovereign.embedded.model_file import bundled_model_path
    from services.sovereign.embedded.prompt import render_prompt

    llm = Llama(model_path=str(bundled_model_path()), n_ctx=2048, verbose=False)
    prompt = render_prompt([{"role": "user", "content": "Describe a user of the site."}])
    body = {
        "response_format": {"type": "json_schema", "json_schema": {"name": "u", "schema": SCHEMA}}
    }
    constraint = constraint_for(body)
    assert constraint is not None

    def measure(**extra: Any) -> tuple[float, float, int]:
        """(ms to the first token, decoding tokens/s after it, tokens): a JSON answer ends
        early, so one rate over the whole call would mostly count the prompt's evaluation."""
        started = time.perf_counter()
        times = []
        for chunk in llm.create_completion(
            prompt, max_tokens=tokens, temperature=0.0, stream=True, **extra
        ):
            if chunk["choices"][0]["text"]:
                times.append(time.perf_counter())
        first = (times[0] - started) * 1000
        decoding = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return first, decoding, len(times)

    measure()  # warm the model
    free_first, free, free_n = measure()
    grammar = llama_grammar(constraint.grammar)
    constrained_first, constrained, constrained_n = measure(grammar=grammar)
    return {
        "free_first_token_ms": round(free_first, 1),
        "free_tokens_per_s": round(free, 1),
        "free_tokens": free_n,
        "grammar_first_token_ms": round(constrained_first, 1),
        "grammar_tokens_per_s": round(constrained, 1),
        "grammar_tokens": constrained_n,
        "grammar_vs_free_pct": round(100 * constrained / free, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--stream-tokens", type=int, default=2000)
    parser.add_argument("--grammar-tokens", type=int, default=48)
    parser.add_argument("--no-grammar", action="store_true")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{tmp}/bench.db"
        with run_openai_upstream(script(args.stream_tokens)) as up:
            env = {"SOVEREIGN_PLAYGROUND_URL": up.url, "LOG_LEVEL": "WARNING"}
            with run_assistants(database_url, Path(tmp) / "service.log", env=env) as service:
                results = bench_relay(service, up.base_url, args.samples)
    results["database"] = database_url.split(":", 1)[0]
    if not args.no_grammar:
        results["grammar"] = bench_grammar(args.grammar_tokens)
    print(json.dumps(results, indent=2))
    print(
        f"Responses first token: {results['added_ttft_ms_median']} ms after chat completions' "
        f"(median; p90 {results['added_ttft_ms_p90']} ms; target within 5)\n"
        f"Responses rate: {results['responses_tokens_per_s']} tok/s = "
        f"{results['responses_vs_chat_pct']}% of chat completions' "
        f"{results['chat_tokens_per_s']} tok/s (target >= 95%)"
    )
    if "grammar" in results:
        g = results["grammar"]
        print(
            f"embedded runtime decoding: {g['grammar_tokens_per_s']} tok/s with the grammar, "
            f"{g['free_tokens_per_s']} without ({g['grammar_vs_free_pct']}%); first token "
            f"{g['grammar_first_token_ms']} ms with it, {g['free_first_token_ms']} ms without"
        )


if __name__ == "__main__":
    main()
