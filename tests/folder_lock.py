"""Holding an output folder's lock from a test, to stop a render before it finishes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from gs_backend.dataset.lock import file_lock
from gs_contract.dataset import DatasetLayout


@contextlib.contextmanager
def folder_locked(out: Path) -> Iterator[None]:
    """Hold the output folder's lock. A run needs it to assemble its dataset, so while it
    is held no run can finish: a signal sent meanwhile always finds the run going, however
    slow or fast the machine (no race with the clock)."""
    with file_lock(DatasetLayout(out).lock_file):
        yield
