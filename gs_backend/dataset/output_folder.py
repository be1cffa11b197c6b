"""Claiming an output folder: same scenario resumes, a different one is refused.

The rule itself (:func:`gs_contract.dataset.plan_output_folder`) lives in gs_contract,
where the Blender add-on applies it too before it writes anything. A run plans once
before loading its assets (to fail fast, writing nothing) and again under the folder
lock when it claims the folder (:func:`claim_output_folder`), so shards that start
together agree: the first claims, the others resume.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from gs_backend.dataset.lock import file_lock
from gs_backend.dataset.writes import find_temp_files, temp_is_stale, write_file_atomic
from gs_contract.dataset import (
    OWNED_DIRS,
    OWNED_FILES,
    DatasetLayout,
    FolderPlan,
    plan_output_folder,
)
from gs_contract.errors import InputError


def claim_output_folder(layout: DatasetLayout, fingerprint: str, *,
                        overwrite: bool) -> FolderPlan:
    """Plan again under the folder lock and carry it out: clear our outputs when
    replacing, create the folder and mark it as this scenario's. Returns the plan.

    Raises:
        InputError: as :func:`plan_output_folder`, or the folder cannot be created or
            written.
    """
    try:
        with folder_lock(layout):
            plan = plan_output_folder(layout, fingerprint, overwrite=overwrite)
            if plan == "replace":
                remove_owned_outputs(layout)
            if plan != "resume":
                write_file_atomic(layout.fingerprint_file, (fingerprint + "\n").encode())
            remove_stale_temp_files(layout)
    except OSError as exc:
        raise InputError(layout.root, "--out", "cannot create or write the folder: "
                                               f"{exc.strerror or exc}") from None
    return plan


@contextlib.contextmanager
def folder_lock(layout: DatasetLayout) -> Iterator[None]:
    """Hold the output folder's lock (:mod:`gs_backend.dataset.lock`: a lock file, safe on
    NFS, taken over when its holder died). Creates the folder. The lock file is not one
    of our outputs, so :func:`remove_owned_outputs` leaves it."""
    with file_lock(layout.lock_file):
        yield


def remove_owned_outputs(layout: DatasetLayout) -> None:
    """Delete what this tool writes in the folder (see ``OWNED_DIRS``/``OWNED_FILES``)."""
    for name in OWNED_DIRS:
        shutil.rmtree(layout.root / name, ignore_errors=True)
    for name in OWNED_FILES:
        (layout.root / name).unlink(missing_ok=True)


def temp_files(layout: DatasetLayout) -> list[Path]:
    """Every temp file of ours in the folder (writes in flight, or left by a killed run)."""
    return find_temp_files(layout.root, OWNED_DIRS,
                           (*OWNED_FILES, layout.scenario_copy.name, layout.lock_file.name))


def remove_stale_temp_files(layout: DatasetLayout) -> int:
    """Delete the temp files no live writer can still rename; return how many went."""
    removed = 0
    for tmp in temp_files(layout):
        try:
            if temp_is_stale(tmp):
                tmp.unlink()
                removed += 1
        except FileNotFoundError:  # its writer renamed it meanwhile
            pass
    return removed
