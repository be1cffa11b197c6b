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
import time
from collections.abc import Iterator

from gs_contract.atomic import write_text_atomic
from gs_contract.dataset import (
    OWNED_DIRS,
    OWNED_FILES,
    DatasetLayout,
    FolderPlan,
    plan_output_folder,
)
from gs_contract.errors import InputError

# A temp file this old belongs to a run that died (a frame's files take well under a
# second to write); younger ones may be another shard's writes in flight.
STALE_TEMP_AGE_S = 600.0


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
                write_text_atomic(layout.fingerprint_file, fingerprint + "\n")
            _remove_stale_temp_files(layout)
    except OSError as exc:
        raise InputError(layout.root, "--out", "cannot create or write the folder: "
                                               f"{exc.strerror or exc}") from None
    return plan


@contextlib.contextmanager
def folder_lock(layout: DatasetLayout) -> Iterator[None]:
    """An exclusive advisory lock on the output folder (POSIX; a no-op elsewhere).

    Creates the folder. The lock file is not one of our outputs, so
    :func:`remove_owned_outputs` leaves it and every process locks the same file.
    """
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: shards into one folder are not guarded there
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def remove_owned_outputs(layout: DatasetLayout) -> None:
    """Delete what this tool writes in the folder (see ``OWNED_DIRS``/``OWNED_FILES``)."""
    for name in OWNED_DIRS:
        shutil.rmtree(layout.root / name, ignore_errors=True)
    for name in OWNED_FILES:
        (layout.root / name).unlink(missing_ok=True)


def _remove_stale_temp_files(layout: DatasetLayout, max_age_s: float = STALE_TEMP_AGE_S) -> None:
    """Temp files of a run that was killed hard (never under a final name), once they
    are old enough not to be another running shard's writes in flight: in our folders,
    and those of our files at the top (manifest, data.yaml, scenario.json)."""
    root = layout.root
    candidates = [tmp for name in OWNED_DIRS if (root / name).is_dir()
                  for tmp in (root / name).rglob(".*.tmp")]
    candidates += [tmp for name in (*OWNED_FILES, layout.scenario_copy.name)
                   for tmp in root.glob(f".{name}.*.tmp")]
    cutoff = time.time() - max_age_s
    for tmp in candidates:
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except FileNotFoundError:  # its writer renamed it meanwhile
            pass
