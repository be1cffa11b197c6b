"""Claiming an output folder: same scenario resumes, a different one is refused.

A folder "holds a dataset" once it has a manifest or at least one finished frame.
The rules, decided by :func:`plan_output_folder` before anything is written (so a run
that fails on its input leaves the folder as it was):

- same scenario (fingerprint) as before: resume, with or without ``overwrite``
  (finished frames are kept; shards of one scenario can each pass ``--overwrite``);
- a different scenario, or a dataset of unknown origin: refused unless ``overwrite``;
  then only the files and folders this tool owns are removed, never anything else the
  user keeps there;
- leftovers of another scenario that never finished a frame: replaced silently.
"""

from __future__ import annotations

import shutil
import time
from typing import Literal

from gs_backend.dataset.layout import OWNED_DIRS, OWNED_FILES, DatasetLayout
from gs_backend.errors import InputError
from gs_backend.io.atomic import write_text_atomic

FolderPlan = Literal["new", "resume", "replace"]
# A temp file this old belongs to a run that died (a frame's files take well under a
# second to write); younger ones may be another shard's writes in flight.
STALE_TEMP_AGE_S = 600.0


def plan_output_folder(layout: DatasetLayout, fingerprint: str, *,
                       overwrite: bool) -> FolderPlan:
    """What claiming ``layout.root`` for this scenario will do; writes nothing.

    Raises:
        InputError: the path is a file, or the folder holds a dataset of another
            scenario and not ``overwrite``.
    """
    root = layout.root
    if root.exists() and not root.is_dir():
        raise InputError(root, "--out", "must be a folder, but this is a file")
    previous = _stored_fingerprint(layout)
    if previous == fingerprint:
        return "resume"
    if not holds_dataset(layout):
        return "replace" if previous is not None else "new"
    if not overwrite:
        what = "another scenario" if previous else "a dataset of unknown origin"
        raise InputError(root, "--out", f"already holds {what}; pass --overwrite to replace "
                                        "it, or choose another --out folder")
    return "replace"


def claim_output_folder(layout: DatasetLayout, fingerprint: str, plan: FolderPlan) -> None:
    """Carry out ``plan``: clear our outputs when replacing, create the folder and mark
    it as this scenario's.

    Raises:
        InputError: the folder cannot be created or written.
    """
    try:
        if plan == "replace":
            remove_owned_outputs(layout)
        layout.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(layout.fingerprint_file, fingerprint + "\n")
    except OSError as exc:
        raise InputError(layout.root, "--out", "cannot create or write the folder: "
                                               f"{exc.strerror or exc}") from None
    _remove_stale_temp_files(layout)


def holds_dataset(layout: DatasetLayout) -> bool:
    """True when the folder has a manifest or at least one finished frame record."""
    if layout.manifest.exists():
        return True
    records = layout.state_dir / "frames"
    return records.is_dir() and any(records.glob("*.json"))


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


def _remove_stale_temp_files(layout: DatasetLayout, max_age_s: float = STALE_TEMP_AGE_S) -> None:
    """Temp files of a run that was killed hard (never under a final name), once they
    are old enough not to be another running shard's writes in flight."""
    cutoff = time.time() - max_age_s
    for name in OWNED_DIRS:
        folder = layout.root / name
        if folder.is_dir():
            for tmp in folder.rglob(".*.tmp"):
                try:
                    if tmp.stat().st_mtime < cutoff:
                        tmp.unlink(missing_ok=True)
                except FileNotFoundError:  # its writer renamed it meanwhile
                    pass
