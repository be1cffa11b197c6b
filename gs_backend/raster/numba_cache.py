"""Where the numba rasterizer's ``cache=True`` kernels keep their compiled code.

``cache=True`` stores the compiled machine code next to the kernel modules (or, when
that folder is read-only, in numba's per-user cache, or when that is not writable
either, in the temp folder; ``NUMBA_CACHE_DIR`` overrides all), so compilation is
paid once per machine. Call :func:`ensure_cache_location` before defining a kernel.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numba
from numba.misc.appdirs import AppDirs


def writable_folder(candidates: Iterable[Path]) -> Path | None:
    """The first candidate folder that exists or can be made and takes a file, else None."""
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                return folder
        except OSError:
            continue
    return None


def ensure_cache_location() -> None:
    """numba refuses to compile a ``cache=True`` kernel when it has nowhere to cache it;
    give it the temp folder when neither of its own locations is writable."""
    if numba.config.CACHE_DIR:
        return
    own = (Path(__file__).parent / "__pycache__",
           Path(AppDirs(appname="numba", appauthor=False).user_cache_dir))
    if writable_folder(own) is None:
        user = os.getuid() if hasattr(os, "getuid") else "user"  # /tmp is shared on POSIX
        numba.config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"gs-backend-numba-{user}")
