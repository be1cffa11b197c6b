"""Per-run bookkeeping: which frames each run (shard) of a folder took on.

Every run writes ``.gs-render/runs/<selection>.json`` when it claims the folder and
again when it finishes: its frame selection (``--frames`` slice and ``--shard I/N``),
device, host, pid and times. One file per selection, so the shards of an array job
never write the same file; a rerun of a shard (resume) replaces its own. ``gs-backend
status`` reads them to know N and which shard owns a missing frame.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gs_backend.dataset.writes import host_tag, write_file_atomic
from gs_contract.atomic import read_json_or_none
from gs_contract.dataset import DatasetLayout


def runs_dir(layout: DatasetLayout) -> Path:
    return layout.state_dir / "runs"


def run_state_name(start: int, stop: int | None, index: int, count: int) -> str:
    """``shard-I-of-N`` (+ ``_frames-A-B`` when not the whole frame list) ``.json``."""
    name = f"shard-{index}-of-{count}"
    if start != 0 or stop is not None:
        name += f"_frames-{start}-{'end' if stop is None else stop}"
    return name + ".json"


def write_run_state(layout: DatasetLayout, start: int, stop: int | None, index: int,
                    count: int, device: str, *, started: float,
                    finished: float | None = None) -> None:
    """Record this run's selection (and, once done, its end time)."""
    state = {"shard": [index, count], "frames": [start, stop], "device": device,
             "host": host_tag(), "pid": os.getpid(), "started": started,
             "finished": finished}
    write_file_atomic(runs_dir(layout) / run_state_name(start, stop, index, count),
                      (json.dumps(state) + "\n").encode())


def read_run_states(layout: DatasetLayout) -> list[dict[str, Any]]:
    """Every readable run state of the folder, oldest start first."""
    folder = runs_dir(layout)
    states = [read_json_or_none(p) for p in sorted(folder.glob("*.json"))] \
        if folder.is_dir() else []
    valid = [s for s in states if isinstance(s, dict) and "shard" in s and "frames" in s]
    return sorted(valid, key=lambda s: s.get("started") or 0.0)


def run_devices(layout: DatasetLayout) -> str | None:
    """The devices every run of the folder used, sorted and comma-separated (what the
    manifest names): the same whichever run, or ``finalize``, writes the manifest."""
    devices = sorted({str(s.get("device")) for s in read_run_states(layout)})
    return ", ".join(devices) or None
