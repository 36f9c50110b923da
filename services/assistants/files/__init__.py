"""Uploaded files: their rows (``records``), their bytes (``storage``), uploads (``upload``).

Other parts of the service call ``records``: ``create_file`` (from bytes or a stream,
e.g. with purpose ``assistants_output``), ``get_file``, ``read_file``, ``open_file`` and
``delete_file``, with the app's ``LocalFileStorage`` (``app.state.file_storage``).
"""

from __future__ import annotations

from .records import (
    PURPOSES,
    clean_filename,
    create_file,
    delete_file,
    file_object,
    get_file,
    list_files,
    open_file,
    read_file,
)
from .storage import FileStorage, LocalFileStorage, UploadTooLarge

__all__ = [
    "PURPOSES",
    "FileStorage",
    "LocalFileStorage",
    "UploadTooLarge",
    "clean_filename",
    "create_file",
    "delete_file",
    "file_object",
    "get_file",
    "list_files",
    "open_file",
    "read_file",
]
