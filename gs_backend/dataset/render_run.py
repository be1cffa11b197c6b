"""One ``gs-backend render`` run: select frames, render them, write the dataset.

The renderer (main thread) never waits on image encoding: finished frames go
to a small thread pool that derives labels, compresses images and writes files
(OpenCV and numpy release the GIL). At most ``max_pending`` frames wait in the
pool, which bounds memory.

Ctrl-C is honoured at every stage (:mod:`gs_backend.interrupt`): before the folder is
claimed it leaves the folder as it was; later, the frames already handed to the writers
are completed and the rest is left for a resume. An output folder that cannot be written
(read-only, disk full) stops the run the same way, with one message naming the path.
"""

from __future__ import annotations

import json
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gs_backend import interrupt
from gs_backend.dataset.assemble import assemble_dataset, finished_records, write_scenario_copy
from gs_backend.dataset.frame_outputs import FrameJob, write_frame, write_output
from gs_backend.dataset.output_folder import claim_output_folder
from gs_backend.dataset.shard_state import run_devices, write_run_state
from gs_backend.dataset.split import assign_splits
from gs_backend.frame_renderer import FrameRenderer, prepare_assets
from gs_backend.progress import Progress
from gs_backend.raster import RasterBackend
from gs_contract.dataset import DatasetLayout, plan_output_folder
from gs_contract.errors import InputError
from gs_contract.protocol import DoneEvent, FrameEvent, LogEvent, StartEvent
from gs_contract.scenario import FrameSpec, Scenario, check_frame_memory


@dataclass(frozen=True)
class FrameSelection:
    """Which frames this run renders: a slice of the frame list, then one shard of it.

    ``start``/``stop`` are 0-based frame positions (``stop`` exclusive, None = end);
    shard ``index`` of ``count`` takes every ``count``-th frame starting at ``index``.
    """

    start: int = 0
    stop: int | None = None
    shard_index: int = 0
    shard_count: int = 1

    def apply(self, frames: tuple[FrameSpec, ...]) -> list[FrameSpec]:
        chosen = list(frames[self.start:self.stop])
        return chosen[self.shard_index::self.shard_count]


@dataclass(frozen=True)
class RenderOptions:
    out_dir: Path
    device: torch.device
    selection: FrameSelection = field(default_factory=FrameSelection)
    overwrite: bool = False
    backend: RasterBackend = "auto"
    writer_threads: int = 2
    max_pending: int = 4


def render_dataset(scenario: Scenario, options: RenderOptions,
                   progress: Progress) -> DoneEvent:
    """Render the selected frames of ``scenario`` into ``options.out_dir``.

    Frames already finished (same scenario) are kept. The assets are loaded before the
    folder is touched, so bad input leaves it as it was. On KeyboardInterrupt the
    frames already handed to the writers are completed, then the interrupt is
    re-raised; the folder stays resumable.

    Returns:
        the summary, also emitted as the ``done`` event.

    Raises:
        InputError: bad input, or an output file that cannot be written.
        KeyboardInterrupt: Ctrl-C.
    """
    try:
        return _render(scenario, options, progress)
    except OSError as exc:  # one not already named by write_output (the lock, a folder)
        raise InputError(exc.filename or options.out_dir, None,
                         f"cannot write: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class PlannedRun:
    """What a run found before it touched the folder: the layout, the scenario's
    fingerprint, the folder plan, the selected frames and those still to render."""

    layout: DatasetLayout
    fingerprint: str
    plan: str
    selected: list[FrameSpec]
    todo: list[FrameSpec]


@dataclass(frozen=True)
class ClaimedRun:
    """A run that claimed the folder: the frames it renders, those already done, and its
    run-state record (``run_state`` fields, ``started`` time)."""

    todo: list[FrameSpec]
    skipped: int
    run_state: tuple[Any, ...]
    started: float


def plan_run(scenario: Scenario, out_dir: Path, selection: FrameSelection, *,
             overwrite: bool) -> PlannedRun:
    """Check the frame memory and the folder, and list the frames to render; the folder
    is not touched (shared by the single-process and the Ray render)."""
    check_frame_memory(scenario)  # before any asset file is read (hashed or loaded)
    layout = DatasetLayout(out_dir)
    fingerprint = scenario.fingerprint()
    plan = plan_output_folder(layout, fingerprint, overwrite=overwrite)
    selected = selection.apply(scenario.frames)
    done = finished_records(layout, scenario, fingerprint) if plan == "resume" else {}
    return PlannedRun(layout, fingerprint, plan, selected,
                      [f for f in selected if f.name not in done])


def claim_run(run: PlannedRun, scenario: Scenario, selection: FrameSelection, *,
              overwrite: bool, device: str) -> ClaimedRun:
    """Claim the folder (another shard may have claimed it meanwhile: then list the
    frames again), record this run's state and keep the scenario beside the dataset (so
    ``status`` and ``finalize`` know the frames)."""
    todo = run.todo
    if claim_output_folder(run.layout, run.fingerprint, overwrite=overwrite) == "resume" \
            and run.plan != "resume":  # another shard claimed the folder meanwhile
        done = finished_records(run.layout, scenario, run.fingerprint)
        todo = [f for f in run.selected if f.name not in done]
    started = time.time()
    run_state = (selection.start, selection.stop, selection.shard_index,
                 selection.shard_count, device)
    if todo:
        write_run_state(run.layout, *run_state, started=started)
    write_scenario_copy(run.layout, scenario)
    return ClaimedRun(todo, len(run.selected) - len(todo), run_state, started)


def report_non_finite(layout: DatasetLayout, scenario: Scenario,
                      non_finite: dict[str, int] | None, progress: Progress) -> None:
    """Keep the loaded assets' dropped non-finite rows for the manifest (``None``: no
    asset was loaded, the last loader's file stays) and warn about each asset."""
    if non_finite is None:
        return
    write_output(layout.non_finite_file, json.dumps(non_finite) + "\n")
    for name, count in non_finite.items():
        progress.emit(LogEvent("warning", f"asset {name!r}: dropped {count} Gaussians with "
                                          f"NaN or infinite values ({scenario.assets[name].ply})"))


def finish_run(run: PlannedRun, claimed: ClaimedRun, scenario: Scenario, *, device: str,
               t0: float, progress: Progress) -> DoneEvent:
    """Assemble the dataset from every record present, close this run's state and report
    the ``done`` event."""
    manifest = assemble_dataset(run.layout, scenario, run.fingerprint,
                                {"device": run_devices(run.layout) or device})
    if claimed.todo:  # a run with nothing to do leaves the record of the one that did
        write_run_state(run.layout, *claimed.run_state, started=claimed.started,
                        finished=time.time())
    interrupt.checkpoint()
    summary = DoneEvent(
        out=str(run.layout.root), frames_total=len(scenario.frames),
        frames_selected=len(run.selected), frames_rendered=len(claimed.todo),
        frames_skipped=claimed.skipped, frames_done=manifest["frames_done"],
        labelled_instances=manifest["labelled_instances"], seconds=time.perf_counter() - t0)
    progress.emit(summary)
    return summary


def _render(scenario: Scenario, options: RenderOptions, progress: Progress) -> DoneEvent:
    t0 = time.perf_counter()
    run = plan_run(scenario, options.out_dir, options.selection, overwrite=options.overwrite)
    interrupt.checkpoint()
    assets = prepare_assets(scenario, options.device) if run.todo else {}
    interrupt.checkpoint()  # last moment that leaves the folder untouched
    claimed = claim_run(run, scenario, options.selection, overwrite=options.overwrite,
                        device=str(options.device))
    layout, fingerprint, selected = run.layout, run.fingerprint, run.selected
    todo, skipped = claimed.todo, claimed.skipped
    splits = assign_splits([f.name for f in scenario.frames], scenario.output.val_fraction,
                           scenario.output.split_seed)

    report_non_finite(layout, scenario, {name: a.non_finite for name, a in assets.items()
                                         if a.non_finite} if assets else None, progress)
    for name, asset in assets.items():
        if asset.gaussians.count == 0:
            progress.emit(LogEvent("warning", f"asset {name!r} has no Gaussians to render, so "
                                              f"its objects are invisible "
                                              f"({scenario.assets[name].ply})"))
    progress.emit(StartEvent(total=len(selected), skipped=skipped, device=str(options.device),
                             out=str(layout.root),
                             gaussians={name: a.gaussians.count for name, a in assets.items()}))

    renderer = FrameRenderer(scenario, assets, options.device, options.backend)
    pending: deque[tuple[FrameSpec, Future[dict[str, Any]]]] = deque()
    finished = skipped

    def collect(block: bool) -> None:
        nonlocal finished
        while pending and (block or pending[0][1].done()):
            frame, future = pending.popleft()
            record = future.result()
            finished += 1
            progress.emit(FrameEvent(
                done=finished, total=len(selected), name=frame.name, split=record["split"],
                instances=sum(i["labelled"] for i in record["instances"]),
                seconds=round(time.perf_counter() - t0, 3)))

    # Ctrl-C is only noted while frames render and are handed to the writers, and raised
    # at the next frame boundary (``checkpoint``): raised anywhere else it could land
    # inside the pool starting a writer thread, which then escapes the join below and
    # keeps writing after the run has returned.
    with ThreadPoolExecutor(options.writer_threads, thread_name_prefix="gs-writer") as pool, \
            interrupt.deferred():
        try:
            for frame in todo:
                interrupt.checkpoint()
                images = renderer.render(frame)
                job = FrameJob(layout, scenario, fingerprint, frame, splits[frame.name], images)
                pending.append((frame, pool.submit(write_frame, job)))
                collect(block=False)
                while len(pending) >= options.max_pending:
                    pending[0][1].result()
                    collect(block=False)
            collect(block=True)
            interrupt.checkpoint()
        except BaseException:
            # Let in-flight frames finish (each is atomic), drop what was not started.
            for _, future in pending:
                future.cancel()
            raise

    return finish_run(run, claimed, scenario, device=str(options.device), t0=t0,
                      progress=progress)
