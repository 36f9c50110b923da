"""`python -m services.sovereign [--host H] [--port P] [--fd FD]`: serve the proxy."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from services.serving import serve
from services.sovereign.app import create_app
from services.sovereign.config import ConfigError
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
    except ValidationError as exc:
        print(f"sovereign: bad setting: {_first_error(exc)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    info = Settings.model_fields.get(field)
    alias = getattr(info, "validation_alias", None) if info else None
    # Name the environment variable the user set, not the Python field.
    name = alias if isinstance(alias, str) else f"{Settings.model_config['env_prefix']}{field}"
    name = name.upper()
    return f"{name}: {err['msg']} (got {err.get('input')!r})"


if __name__ == "__main__":
    sys.exit(main())
