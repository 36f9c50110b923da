"""`python -m services.sovereign.embedded [--host H] [--port P] [--fd FD]`: the embedded runtime."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from services.serving import serve
from services.sovereign.embedded.embedder import EmbedderError
from services.sovereign.embedded.embedding_models import bundled_embedding_models
from services.sovereign.embedded.model_file import ModelFileError, bundled_model_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.sovereign.embedded")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument("--ctx", type=int, default=2048, help="context length in tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per model")
    parser.add_argument("--model", type=Path, help="a GGUF chat model instead of the bundled one")
    args = parser.parse_args(argv)
    # Everything is local: nothing may reach a model hub, whatever a library would try.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if importlib.util.find_spec("llama_cpp") is None:
        print(
            "sovereign-embedded: llama-cpp-python is not installed; "
            "install the extra: pip install -e '.[embedded]'",
            file=sys.stderr,
        )
        return 2
    threads = args.threads or max(1, min(4, os.cpu_count() or 1))
    try:
        model_path = args.model or bundled_model_path()
        embedders = bundled_embedding_models(threads)
    except (ModelFileError, EmbedderError) as exc:
        print(f"sovereign-embedded: {exc}", file=sys.stderr)
        return 2
    if not model_path.is_file():
        print(f"sovereign-embedded: no model file at {model_path}", file=sys.stderr)
        return 2

    from services.sovereign.embedded.runner import LlamaRunner
    from services.sovereign.embedded.server import create_embedded_app

    runner = LlamaRunner(model_path, n_ctx=args.ctx, n_threads=threads)
    app = create_embedded_app(runner, embedders)
    serve(
        app,
        host=args.host,
        port=args.port,
        fd=args.fd,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
