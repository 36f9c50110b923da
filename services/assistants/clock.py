"""Unix-second timestamps, as every OpenAI object carries them."""

from __future__ import annotations

import time


def now() -> int:
    return int(time.time())
