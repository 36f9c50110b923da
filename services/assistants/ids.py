"""OpenAI-style object ids: a type prefix and 24 random base62 characters."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """A fresh id such as ``asst_Xy3…``; ``prefix`` carries its own separator (``_`` or ``-``)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))
