"""``gs-backend finalize DIR``: the dataset-wide files once every frame is rendered.

``manifest.json``, ``data.yaml`` and the COCO files are a pure function of the frame
records in the folder (plus the bookkeeping every run writes), so writing them again
changes nothing: finalize is idempotent, and equals what the last shard to finish wrote.
It reads the scenario from ``DIR/scenario.json`` (every run writes it when it claims the
folder) and the scenario's fingerprint from ``DIR/.gs-render/scenario.sha256``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gs_backend.dataset.assemble import assemble_dataset, finished_records
from gs_backend.dataset.output_folder import remove_stale_temp_files
from gs_backend.dataset.shard_state import run_devices
from gs_contract.dataset import DatasetLayout
from gs_contract.errors import InputError
from gs_contract.scenario import Scenario, load_scenario

# How many missing frame names an error message lists.
LISTED_MISSING = 20


def open_dataset(folder: Path) -> tuple[DatasetLayout, Scenario, str]:
    """The layout, scenario and fingerprint of a folder some render has claimed.

    Raises:
        InputError: the folder holds no claimed dataset, or its scenario cannot be read.
    """
    layout = DatasetLayout(folder)
    try:
        fingerprint = layout.fingerprint_file.read_text(encoding="utf-8").strip()
    except OSError:
        fingerprint = ""
    if not fingerprint:
        raise InputError(folder, None, "no dataset render has claimed this folder "
                                       f"({layout.relative(layout.fingerprint_file)} missing)")
    if not layout.scenario_copy.is_file():
        raise InputError(folder, None, "scenario.json is missing: render into the folder "
                                       "again (that writes it), then retry")
    return layout, load_scenario(layout.scenario_copy), fingerprint


def missing_frame_names(layout: DatasetLayout, scenario: Scenario,
                        fingerprint: str) -> list[str]:
    """Names of the scenario's frames without a complete record, in frame order."""
    done = finished_records(layout, scenario, fingerprint)
    return [f.name for f in scenario.frames if f.name not in done]


def finalize_dataset(folder: Path) -> dict[str, Any]:
    """Write the dataset-wide files of a folder whose frames are all rendered; return
    the manifest. Stale temp files (of killed runs) are removed.

    Raises:
        InputError: see :func:`open_dataset`; or frames are missing (listing them).
    """
    layout, scenario, fingerprint = open_dataset(folder)
    missing = missing_frame_names(layout, scenario, fingerprint)
    if missing:
        listed = ", ".join(missing[:LISTED_MISSING])
        more = f" and {len(missing) - LISTED_MISSING} more" if len(missing) > LISTED_MISSING \
            else ""
        raise InputError(folder, None,
                         f"{len(missing)} of {len(scenario.frames)} frames are not rendered "
                         f"yet: {listed}{more} (`gs-backend status` names their shards)")
    remove_stale_temp_files(layout)
    return assemble_dataset(layout, scenario, fingerprint,
                            {"device": run_devices(layout) or "unknown"})
