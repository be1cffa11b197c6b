"""Atomic file writes: write to a temp file in the same folder, then rename.

An interrupted write never leaves a truncated file under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0o666 minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# What a plain open(path, "w") gives here; every atomic writer gives its files this mode.
DEFAULT_FILE_MODE = _default_file_mode()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file + ``os.replace`` in the same folder.

    The file gets the usual permissions (0o666 minus the umask), not the private
    0o600 of a temp file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if hasattr(os, "chmod"):
            os.chmod(tmp, DEFAULT_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json_or_none(path: str | Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable (bookkeeping files
    that the next run simply makes again)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_text_atomic(path: str | Path, text: str) -> None:
    """UTF-8 text version of :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))
