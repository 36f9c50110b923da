"""The stack's domain errors, kept free of heavy imports so every command can catch them."""

# StackError      one readable line and an exit code (1 unless said otherwise)
# ConfigError     the stack file cannot be used: every (path, message) found; exit 2

from __future__ import annotations

__all__ = ["ConfigError", "StackError"]


class StackError(Exception):
    """A domain error: one readable line, and the exit code to leave with."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ConfigError(Exception):
    """stack.yaml cannot be used; `problems` holds every (path, message) found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in problems))
