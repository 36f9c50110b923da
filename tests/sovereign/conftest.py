"""Fixtures for the sovereign tests: the repository root on sys.path for `tests.fakes`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The editable install only maps `services` and `stack`; the shared fakes live under tests/.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
