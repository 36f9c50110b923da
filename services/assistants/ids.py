"""OpenAI-style object ids: a type prefix and 24 random base62 characters."""

from __future__ import annotations

import os
import string

_ALPHABET = string.ascii_letters + string.digits
_LENGTH = 24
# The largest multiple of 62 a byte can hold: bytes from 248 up are dropped, so every
# character is equally likely (rejection sampling).
_LIMIT = 256 - 256 % len(_ALPHABET)


def new_id(prefix: str) -> str:
    """A fresh id such as ``asst_Xy3…``; ``prefix`` carries its own separator (``_`` or ``-``).

    The characters come from the OS's CSPRNG, one read for the whole id (~3 µs; one
    ``secrets.choice`` per character took ~23 µs).
    """
    chars: list[str] = []
    while len(chars) < _LENGTH:
        chars += [_ALPHABET[b % len(_ALPHABET)] for b in os.urandom(32) if b < _LIMIT]
    return prefix + "".join(chars[:_LENGTH])
