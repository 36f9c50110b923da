"""The prompt format for the bundled base model: a few-shot question-and-answer transcript.

gemma-3-270m is a pretrained (not instruction-tuned) model: with Gemma's chat turns it
echoes the question back, while a short Question/Answer transcript makes it answer
briefly ("What is 2 + 2? Answer in one word." -> "4"). Earlier turns of the conversation
become earlier Question/Answer pairs; a system message leads the transcript; tool calls
and tool results are written into the transcript as text. Anything the transcript cannot
carry (an unknown role, an image) is refused with PromptError, never dropped.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["STOP", "PromptError", "render_prompt"]

_SHOTS = (
    ("What is 1 + 1? Answer in one word.", "2"),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("Say goodbye.", "Goodbye!"),
    ("How many legs does a cat have?", "A cat has four legs."),
)

# A blank line ends an answer in the transcript, so it ends generation too.
STOP = ["\n\n", "\nQuestion:"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")


class PromptError(ValueError):
    """A message the transcript cannot carry; `param` names it (messages[i]...)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise PromptError("content must be a string or a list of parts", param)
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            texts.append(str(part.get(kind) or ""))
        else:
            raise PromptError(
                f"the embedded model reads text only; it cannot take a {kind!r} content part",
                f"{param}[{i}]",
            )
    return " ".join(texts)


def _calls(message: dict[str, Any]) -> list[str]:
    calls = []
    for call in message.get("tool_calls") or []:
        function = (call or {}).get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(f"{function.get('name')}({arguments})")
    if message.get("function_call"):  # the deprecated single-function form
        function = message["function_call"]
        calls.append(f"{function.get('name')}({function.get('arguments')})")
    return calls


def render_prompt(messages: list[dict[str, Any]]) -> str:
    """The transcript for these messages; PromptError for one it cannot carry."""
    parts: list[str] = []
    system: list[str] = []
    body: list[str] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, to label results
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ROLES:
            raise PromptError(f"unknown message role {role!r}", f"{param}.role")
        text = _text(message.get("content"), f"{param}.content").strip()
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            body.append(f"Question: {text}\n")
        elif role == "assistant":
            for call in message.get("tool_calls") or []:
                call = call or {}
                names[call.get("id", "")] = (call.get("function") or {}).get("name", "")
            calls = _calls(message)
            if calls:  # the results that follow complete this answer
                text = (text + " " if text else "") + "I called " + ", ".join(calls) + "."
                body.append(f"Answer: {text}")
            elif text:
                body.append(f"Answer: {text}\n\n")
        else:  # tool and function results: what the tool said, inside the answer
            name = message.get("name") or names.get(message.get("tool_call_id", ""), "a tool")
            if not body or not body[-1].startswith("Answer: "):
                body.append("Answer:")
            body[-1] = body[-1].removesuffix("\n\n") + f" {name} returned: {text}\n\n"
    if any(system):
        parts.append(" ".join(s for s in system if s) + "\n\n")
    parts.extend(f"Question: {q}\nAnswer: {a}\n\n" for q, a in _SHOTS)
    parts.extend(body)
    parts.append("Answer:")
    return "".join(parts)
