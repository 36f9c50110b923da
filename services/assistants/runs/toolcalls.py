"""Tool calls streamed by the model, accumulated from fragments into whole calls.

Upstreams differ: most send an ``index`` per fragment, some omit it (a fragment carrying a
new id or a name then starts the next call), some omit ids (we mint ``call_`` ids), and
indices need not start at 0. Positions in our step deltas are always 0, 1, 2, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ids import new_id

__all__ = ["ToolCall", "ToolCalls"]


@dataclass
class ToolCall:
    id: str
    name: str = ""
    arguments: str = ""
    # "code_interpreter" or "file_search" for calls the run answers itself (runs/served.py).
    type: str = "function"
    streamed: str = ""
    outputs: list[dict[str, Any]] | None = None
    result: Any = None
    # A file_search call's step details, once answered.
    details: dict[str, Any] | None = None

    def as_object(self, *, with_output: bool) -> dict[str, Any]:
        if self.type == "code_interpreter":
            details = {"input": self.streamed, "outputs": self.outputs or []}
            return {"id": self.id, "type": self.type, "code_interpreter": details}
        if self.type == "file_search":
            return {"id": self.id, "type": self.type, "file_search": self.details or {}}
        function: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if with_output:
            function["output"] = None
        return {"id": self.id, "type": "function", "function": function}


@dataclass
class ToolCalls:
    calls: list[ToolCall] = field(default_factory=list)
    _positions: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.calls)

    def _position(self, fragment: dict[str, Any]) -> int:
        index = fragment.get("index")
        if isinstance(index, int):
            return self._positions.setdefault(index, len(self._positions))
        call_id = fragment.get("id")
        if call_id:
            starts = not self.calls or call_id != self.calls[-1].id
        else:
            starts = bool((fragment.get("function") or {}).get("name")) or not self.calls
        return len(self.calls) if starts else len(self.calls) - 1

    def add(self, fragment: dict[str, Any]) -> dict[str, Any]:
        """Fold one upstream fragment in; returns the run-step tool-call delta to relay."""
        function = fragment.get("function") or {}
        position = self._position(fragment)
        delta: dict[str, Any] = {"index": position, "type": "function"}
        if position >= len(self.calls):
            call = ToolCall(
                id=fragment.get("id") or new_id("call_"),
                name=function.get("name") or "",
                arguments=function.get("arguments") or "",
            )
            self.calls.append(call)
            delta["id"] = call.id
            delta["function"] = {"name": call.name, "arguments": call.arguments, "output": None}
            return delta
        call = self.calls[position]
        arguments = function.get("arguments") or ""
        call.arguments += arguments
        if function.get("name"):
            call.name += function["name"]
        delta["function"] = {"arguments": arguments}
        return delta
