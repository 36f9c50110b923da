"""Fixtures shared by the sovereign tests: a client on the `stack` fixture of each module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.sovereign import Sovereign


@pytest.fixture
def client(stack: tuple[Any, Sovereign]) -> Iterator[httpx.Client]:
    """An HTTP client on the sovereign of the module's `stack` (fake upstream, sovereign)."""
    with httpx.Client(base_url=stack[1].base_url, timeout=15) as c:
        yield c
