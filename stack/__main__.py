"""`python -m stack` is the `stack` command."""

from stack.cli import app

app(prog_name="stack")
