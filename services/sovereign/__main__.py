"""`python -m services.sovereign [--host H] [--port P] [--fd FD]`: serve the proxy."""

from __future__ import annotations

import argparse
import sys

from services.sovereign.app import create_app
from services.sovereign.config import ConfigError
from services.sovereign.serving import serve
from services.sovereign.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.sovereign")
    parser.add_argument("--host", help="bind address (default: SOVEREIGN_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: SOVEREIGN_PORT or 8080)")
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = Settings(**overrides)
        app = create_app(settings)
    except ConfigError as exc:
        print(f"sovereign: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # pydantic's ValidationError, e.g. SOVEREIGN_PORT=abc
        first = str(exc).splitlines()
        print(f"sovereign: bad settings: {' '.join(first[:3])}", file=sys.stderr)
        return 2
    serve(
        app,
        host=settings.host,
        port=settings.port,
        fd=args.fd,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
