"""The `stack` command line: options are declared here, the work is done in stack.commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from stack.errors import ConfigError, StackError

app = typer.Typer(
    help="Bring the stack up, keep it alive, tell the truth about it, take it down.",
    no_args_is_help=True,
    add_completion=False,
)

FileOpt = Annotated[
    Path,
    typer.Option(
        "--file", "-f", envvar="STACK_FILE", help="The stack file (.stack/ goes beside it)."
    ),
]
# `stack logs -f` follows, as with docker; there the stack file is --file only
LongFileOpt = Annotated[
    Path,
    typer.Option("--file", envvar="STACK_FILE", help="The stack file (.stack/ goes beside it)."),
]
DEFAULT = Path("stack.yaml")


def _run(fn: Callable[..., int], *args: Any) -> None:
    try:
        code = fn(*args)
        # Skip the interpreter's teardown (~0.1 s with pydantic loaded): nothing is left to
        # clean up once the command has returned, and every `stack` call pays for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    except ConfigError as exc:
        if len(exc.problems) == 1 and not exc.problems[0][0]:
            typer.echo(f"stack: {exc.problems[0][1]}; nothing started", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"{len(exc.problems)} problem(s) in the stack file, nothing started:", err=True)
        for path, msg in exc.problems:
            typer.echo(f"  {path}: {msg}" if path else f"  {msg}", err=True)
        raise typer.Exit(2) from None
    except StackError as exc:
        typer.echo(f"stack: {exc}", err=True)
        raise typer.Exit(exc.code) from None


@app.command()
def up(
    file: FileOpt = DEFAULT,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops all.")
    ] = False,
) -> None:
    """Start every service in order; return once all are healthy."""
    from stack import commands

    _run(commands.up, file, foreground)


@app.command()
def down(file: FileOpt = DEFAULT) -> None:
    """Stop every service (reverse order) and the supervisor."""
    from stack import commands

    _run(commands.down, file)


@app.command()
def status(
    file: FileOpt = DEFAULT,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable state.")] = False,
) -> None:
    """State, pid, port, URL, health, restarts, uptime and last exit of each service."""
    from stack import commands

    _run(commands.status, file, as_json)


@app.command()
def logs(
    service: Annotated[str | None, typer.Argument(help="One service; all when omitted.")] = None,
    file: LongFileOpt = DEFAULT,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("-n", "--lines", help="Lines from the end.")] = 50,
) -> None:
    """Print the services' logs from .stack/logs (the stack file is --file here: -f follows)."""
    from stack import commands

    _run(commands.logs, file, service, lines, follow)


@app.command()
def restart(
    service: Annotated[str, typer.Argument()],
    file: FileOpt = DEFAULT,
    no_deps: Annotated[
        bool, typer.Option("--no-deps", help="Leave the services that depend on it alone.")
    ] = False,
) -> None:
    """Restart one service (the preferred variant first) and what must follow it; wait until
    all are healthy again."""
    from stack import commands

    _run(commands.restart, file, service, not no_deps)


@app.command()
def config(file: FileOpt = DEFAULT) -> None:
    """Print the resolved configuration (variants chosen, ports resolved, references filled)."""
    from stack import commands

    _run(commands.config, file)


if __name__ == "__main__":
    app()
