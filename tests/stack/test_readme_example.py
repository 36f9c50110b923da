"""The README's own SDK example, run as written against `stack up` with the embedded runtime.

What a new user does first: bring the stack up without Ollama and paste the example. The
example is read from README.md, so the README cannot drift from what works.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import StackHarness

ROOT = Path(__file__).resolve().parents[2]
README_BASE_URL = "http://127.0.0.1:8000/v1"


def readme_example() -> str:
    """The first Python block of the README's SDK section."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Using it from the openai SDK", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's SDK section has no python example"
    return match.group(1)


def test_readme_example_points_at_the_default_address() -> None:
    example = readme_example()
    assert f'base_url="{README_BASE_URL}"' in example
    assert 'api_key="test-key"' in example


@pytest.mark.timeout(420)
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama_cpp is not importable: install the extra with pip install -e '.[embedded]'",
)
@pytest.mark.skipif(shutil.which("ollama") is not None, reason="ollama would be used instead")
def test_readme_example_answers_through_the_embedded_stack(
    harness: StackHarness, tmp_path: Path
) -> None:
    harness.file = ROOT / "stack.yaml"
    harness.env.update(
        STACK_STATE_DIR=str(tmp_path / "state"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'assistants.db'}",
        API_KEY="test-key",
    )
    for var in ("STACK_RUNTIME_URL", "OLLAMA_MODEL"):
        harness.env.pop(var, None)
    up = harness.cli("up", timeout=360)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        url = harness.status()["services"]["assistants"]["url"]
        script = readme_example().replace(README_BASE_URL, f"{url}/v1")
        # The example prints the newest message; make sure it is the run's answer.
        script += "assert run.status == 'completed', (run.status, run.last_error)\n"
        script += (
            "assert client.beta.threads.messages.list(thread.id).data[0].role == 'assistant'\n"
        )
        answer = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=240,
            env=harness.env,
        )
        assert answer.returncode == 0, answer.stderr
        # Runs sample at temperature 1 as OpenAI's do, so the small model's words vary;
        # what must hold is that the run completed with an answer.
        assert answer.stdout.strip(), "the example printed no answer"
    finally:
        assert harness.cli("down", timeout=60).returncode == 0
    harness.assert_nothing_left()
