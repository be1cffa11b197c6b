"""Claiming an output folder: same scenario resumes, a different one is refused.

A folder is "used" once it holds a dataset (our bookkeeping folder or a
manifest). Rendering a different scenario into a used folder is refused unless
``overwrite`` is set; then only the files and folders this tool owns are
removed, never anything else the user keeps there.
"""

from __future__ import annotations

import shutil

from gs_backend.dataset.layout import OWNED_DIRS, OWNED_FILES, DatasetLayout
from gs_backend.errors import InputError
from gs_backend.io.atomic import write_text_atomic


def claim_output_folder(layout: DatasetLayout, fingerprint: str, *, overwrite: bool) -> bool:
    """Make ``layout.root`` ready for this scenario. Returns True when resuming.

    Raises:
        InputError: the folder holds a dataset of another scenario and not ``overwrite``,
            or the path is a file.
    """
    root = layout.root
    if root.exists() and not root.is_dir():
        raise InputError(root, None, "--out must be a folder, but this is a file")
    previous = _stored_fingerprint(layout)
    used = previous is not None or layout.manifest.exists()
    same = previous == fingerprint
    if used and not same and not overwrite:
        what = "another scenario" if previous else "a dataset of unknown origin"
        raise InputError(root, None, f"already holds {what}; pass --overwrite to replace "
                                     "it, or choose another --out folder")
    if used and overwrite and not same:
        remove_owned_outputs(layout)
    if overwrite and same:
        remove_owned_outputs(layout)
        same = False
    root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(layout.fingerprint_file, fingerprint + "\n")
    _remove_stale_temp_files(layout)
    return used and same


def remove_owned_outputs(layout: DatasetLayout) -> None:
    """Delete what this tool writes in the folder (see ``OWNED_DIRS``/``OWNED_FILES``)."""
    for name in OWNED_DIRS:
        shutil.rmtree(layout.root / name, ignore_errors=True)
    for name in OWNED_FILES:
        (layout.root / name).unlink(missing_ok=True)


def _stored_fingerprint(layout: DatasetLayout) -> str | None:
    try:
        return layout.fingerprint_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _remove_stale_temp_files(layout: DatasetLayout) -> None:
    """Temp files of a run that was killed hard (never under a final name)."""
    for name in OWNED_DIRS:
        folder = layout.root / name
        if folder.is_dir():
            for tmp in folder.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
