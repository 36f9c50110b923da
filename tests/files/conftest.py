"""The Files suites use the assistants suites' checked clients."""

from __future__ import annotations

from tests.assistants.conftest import api, conformance, openai_client

__all__ = ["api", "conformance", "openai_client"]
