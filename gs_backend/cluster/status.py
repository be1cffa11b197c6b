"""``gs-backend status DIR``: a dataset folder's progress across the shards filling it.

Which shard owns a frame: a run with ``--frames A:B --shard I/N`` takes every N-th frame
of the slice A:B starting at position I (:class:`FrameSelection`). Each run records its
selection in ``.gs-render/runs/`` when it claims the folder, so the status knows every N
in use. A missing frame is listed under each run whose selection holds it; a frame no run
has taken yet is attributed to the shard that would take it when all runs share one
slice and N (the usual array job in which some tasks have not started), else to none.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gs_backend.dataset.assemble import finished_records
from gs_backend.dataset.finalize import open_dataset
from gs_backend.dataset.lock import read_holder
from gs_backend.dataset.output_folder import temp_files
from gs_backend.dataset.render_run import FrameSelection
from gs_backend.dataset.shard_state import read_run_states
from gs_backend.dataset.writes import host_tag, pid_alive, temp_is_stale
from gs_contract.atomic import read_json_or_none

NOT_STARTED = "not started"


def folder_status(folder: Path) -> dict[str, Any]:
    """The JSON-ready status of ``folder`` (see docs/cluster.md for the fields).

    Raises:
        InputError: the folder holds no claimed dataset (see :func:`open_dataset`).
    """
    layout, scenario, fingerprint = open_dataset(folder)
    frames = scenario.frames
    done = finished_records(layout, scenario, fingerprint)
    missing = [f.name for f in frames if f.name not in done]
    now = time.time()

    runs, owners = [], {name: [] for name in missing}
    for state in read_run_states(layout):
        (index, count), (start, stop) = state["shard"], state["frames"]
        names = [f.name for f in FrameSelection(start, stop, index, count).apply(frames)]
        label = shard_label(start, stop, index, count)
        for name in names:
            if name in owners:
                owners[name].append(label)
        runs.append({"shard": label, "frames": len(names),
                     "done": sum(n in done for n in names),
                     "state": _run_state(state), "device": state.get("device"),
                     "host": state.get("host"), "pid": state.get("pid"),
                     "started_s_ago": _ago(state.get("started"), now),
                     "finished_s_ago": _ago(state.get("finished"), now)})
    _attribute_unstarted(owners, read_run_states(layout), frames)

    holder = read_holder(layout.lock_file)
    temps = []
    for tmp in temp_files(layout):
        try:
            temps.append({"path": layout.relative(tmp), "stale": temp_is_stale(tmp)})
        except FileNotFoundError:  # renamed meanwhile
            pass
    manifest = read_json_or_none(layout.manifest)
    final = isinstance(manifest, dict) and manifest.get("complete") is True \
        and manifest.get("frames_done") == len(frames) and not missing
    return {"out": str(layout.root), "scenario_sha256": fingerprint,
            "frames_total": len(frames), "frames_done": len(done),
            "complete": not missing, "finalized": final,
            "missing": [{"frame": name, "shards": owners[name]} for name in missing],
            "runs": runs, "lock": None if holder is None else holder.to_json(),
            "temp_files": temps}


def shard_label(start: int, stop: int | None, index: int, count: int) -> str:
    """``I/N``, with ``--frames A:B`` in front when the run took a slice."""
    label = f"{index}/{count}"
    if start != 0 or stop is not None:
        label = f"{start}:{'' if stop is None else stop} {label}"
    return label


def _run_state(state: dict[str, Any]) -> str:
    if state.get("finished"):
        return "finished"
    if state.get("host") != host_tag():
        return "running or died"  # another node: only its frames tell
    return "running" if pid_alive(int(state.get("pid", 0))) else "died"


def _attribute_unstarted(owners: dict[str, list[str]], states: list[dict[str, Any]],
                         frames: tuple) -> None:
    """Missing frames no run took: name the shard that would take them, when every run
    used the same slice and N."""
    plans = {(s["frames"][0], s["frames"][1], s["shard"][1]) for s in states}
    if len(plans) != 1:
        return
    start, stop, count = plans.pop()
    for index in range(count):
        for frame in FrameSelection(start, stop, index, count).apply(frames):
            if owners.get(frame.name) == []:
                owners[frame.name] = [f"{shard_label(start, stop, index, count)} "
                                      f"({NOT_STARTED})"]


def _ago(stamp: float | None, now: float) -> float | None:
    return None if stamp is None else round(now - stamp, 1)


def format_status(status: dict[str, Any]) -> str:
    """The status as a few lines of text for a terminal."""
    lines = [f"{status['out']}: {status['frames_done']}/{status['frames_total']} frames done"
             + ("" if not status["complete"] else
                (", finalized" if status["finalized"] else
                 ", not finalized (run `gs-backend finalize` on it)"))]
    by_shard: dict[str, list[str]] = {}
    for item in status["missing"]:
        key = ", ".join(item["shards"]) or "no shard (outside every run's selection)"
        by_shard.setdefault(key, []).append(item["frame"])
    for key, names in by_shard.items():
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        lines.append(f"  missing, shard {key}: {shown}")
    for run in status["runs"]:
        lines.append(f"  run {run['shard']}: {run['done']}/{run['frames']} frames, "
                     f"{run['state']} ({run['host']} pid {run['pid']}, {run['device']})")
    lock = status["lock"]
    if lock is not None:
        lines.append(f"  lock held by {lock['host']} pid {lock['pid']}, touched "
                     f"{lock['age_s']} s ago" + (" (stale: the next run takes it over)"
                                                 if lock["stale"] else ""))
    if status["temp_files"]:
        stale = sum(t["stale"] for t in status["temp_files"])
        lines.append(f"  temp files: {len(status['temp_files'])} ({stale} stale, removed by "
                     "the next run or finalize)")
    return "\n".join(lines)
