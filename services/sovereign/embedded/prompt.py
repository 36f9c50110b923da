"""The prompt format for the bundled base model: a few-shot question-and-answer transcript.

gemma-3-270m is a pretrained (not instruction-tuned) model: with Gemma's chat turns it
echoes the question back, while a short Question/Answer transcript makes it answer
briefly ("What is 2 + 2? Answer in one word." -> "4"). Earlier turns of the conversation
become earlier Question/Answer pairs; a system message leads the transcript.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STOP", "render_prompt"]

_SHOTS = (
    ("What is 1 + 1? Answer in one word.", "2"),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("Say goodbye.", "Goodbye!"),
    ("How many legs does a cat have?", "A cat has four legs."),
)

# A blank line ends an answer in the transcript, so it ends generation too.
STOP = ["\n\n", "\nQuestion:"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def render_prompt(messages: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    system = " ".join(
        _text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    if system.strip():
        parts.append(system.strip() + "\n\n")
    parts.extend(f"Question: {q}\nAnswer: {a}\n\n" for q, a in _SHOTS)
    for message in messages:
        role, text = message.get("role"), _text(message.get("content")).strip()
        if role == "user":
            parts.append(f"Question: {text}\n")
        elif role == "assistant" and text:
            parts.append(f"Answer: {text}\n\n")
        elif role == "tool" and text:
            parts.append(f"(Tool result: {text})\n")
    parts.append("Answer:")
    return "".join(parts)
