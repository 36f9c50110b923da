"""The code_interpreter sandbox: model-written Python run in bubblewrap, one session a thread."""

from __future__ import annotations

from .bwrap import SandboxUnavailable
from .files import OutputFile
from .limits import SandboxLimits
from .pool import SandboxPool
from .session import ExecutionResult, SandboxSession

__all__ = [
    "ExecutionResult",
    "OutputFile",
    "SandboxLimits",
    "SandboxPool",
    "SandboxSession",
    "SandboxUnavailable",
]
