"""Decoding constraints for the embedded runtime: a GBNF grammar from a request's JSON
schema (``response_format``) or from its function tools (``tool_choice``).

The grammar accepts a subset of what the schema allows, never more: arrays and free
strings get an upper bound (a tiny model would otherwise repeat until its token budget
ends, leaving JSON unfinished), and strings hold no raw control characters (JSON forbids
them, and a newline would meet the runtime's stop sequences).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = ["Constraint", "call_of", "constraint_for", "tool_prompt"]

MAX_ITEMS = 3
MAX_STRING = 24
_CHAR_RULE = 'char ::= [^"\\\\] |'
_STRICT_CHAR_RULE = 'char ::= [^"\\\\\\x00-\\x1F\\x7F] |'
# A plain answer in "auto" mode: anything that does not open a JSON object.
_TEXT_RULES = "text ::= [^{ \\n] [^\\x00]*\n"


@dataclass(frozen=True)
class Constraint:
    """A grammar and what its output is: ``json`` (the answer), ``call`` (a function call
    the model must make), ``auto`` (a call, or a plain answer)."""

    grammar: str
    mode: str


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMAS = ("items", "additionalProperties", "not", "contains")


def _bounded(schema: Any) -> Any:
    """``schema`` with upper bounds on arrays and free strings, within its own bounds."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _bounded(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_bounded(sub) for sub in out[key]]
    for key in _SCHEMAS:
        if isinstance(out.get(key), dict):
            out[key] = _bounded(out[key])
    kind = out.get("type")
    if kind == "array":
        floor = int(out.get("minItems") or 0)
        out["maxItems"] = max(floor, min(int(out.get("maxItems", MAX_ITEMS)), MAX_ITEMS))
    if kind == "string" and not ({"enum", "const", "pattern", "format"} & out.keys()):
        floor = int(out.get("minLength") or 0)
        out["maxLength"] = max(floor, min(int(out.get("maxLength", MAX_STRING)), MAX_STRING))
    return out


@lru_cache(maxsize=256)
def _gbnf(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    grammar = json_schema_to_gbnf(schema_json)
    return grammar.replace(_CHAR_RULE, _STRICT_CHAR_RULE)


def _schema_gbnf(schema: dict[str, Any]) -> str:
    return _gbnf(json.dumps(_bounded(schema)))


def _call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    alternatives = []
    for tool in tools:
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        alternatives.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def constraint_for(body: dict[str, Any]) -> Constraint | None:
    """The constraint a chat request asks for, or None for free text."""
    tools = [
        t
        for t in body.get("tools") or []
        if t.get("type") == "function" and (t.get("function") or {}).get("name")
    ]
    choice = body.get("tool_choice", "auto" if tools else "none")
    if tools and choice != "none":
        if isinstance(choice, dict):
            name = (choice.get("function") or {}).get("name") or choice.get("name")
            tools = [t for t in tools if t["function"]["name"] == name] or tools
            choice = "required"
        grammar = _schema_gbnf(_call_schema(tools))
        if choice == "required":
            return Constraint(grammar, "call")
        renamed = re.sub(r"^root ::=", "call ::=", grammar, flags=re.M).rstrip("\n")
        return Constraint(renamed + "\nroot ::= call | text\n" + _TEXT_RULES, "auto")
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return Constraint(_schema_gbnf(schema), "json")
    if fmt.get("type") in ("json_schema", "json_object"):
        return Constraint(_schema_gbnf({"type": "object"}), "json")
    return None


def call_of(text: str, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The function call a constrained answer holds, or None when it is a plain answer."""
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    names = {(t.get("function") or {}).get("name") for t in tools}
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    return {"name": value["name"], "arguments": json.dumps(value.get("arguments", {}))}


def tool_prompt(tools: list[dict[str, Any]]) -> str:
    """The tools, described for the model in the system part of its prompt."""
    lines = ["You can call these functions by answering with JSON:"]
    for tool in tools:
        function = tool.get("function") or {}
        params = json.dumps(function.get("parameters") or {}, separators=(",", ":"))
        lines.append(f"- {function.get('name')}: {function.get('description') or ''} {params}")
    return "\n".join(lines)


# Enough for a constrained answer to close its brackets when the client set no limit.
CONSTRAINED_MAX_TOKENS = 512


@lru_cache(maxsize=64)
def llama_grammar(text: str) -> Any:
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def constrain(
    body: dict[str, Any], messages: list[dict[str, Any]], params: dict[str, Any], n_ctx: int
) -> tuple[Constraint | None, list[dict[str, Any]]]:
    """Apply the request's constraint to the generation ``params``; returns it and the
    messages to render (with the tools described when the model may call one)."""
    constraint = constraint_for(body)
    if constraint is None:
        return None, messages
    params["grammar"] = llama_grammar(constraint.grammar)
    if not (body.get("max_completion_tokens") or body.get("max_tokens")):
        params["max_tokens"] = min(CONSTRAINED_MAX_TOKENS, n_ctx // 2)
    if constraint.mode == "json":
        return constraint, messages
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    return constraint, [{"role": "system", "content": tool_prompt(tools)}, *messages]


def tool_call_message(text: str, body: dict[str, Any], call_id: str) -> dict[str, Any] | None:
    """The assistant message of a constrained answer that is a function call."""
    call = call_of(text, [t for t in body.get("tools") or [] if t.get("type") == "function"])
    if call is None:
        return None
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": call}],
    }
