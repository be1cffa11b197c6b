"""``gs-backend render ... --ray [ADDRESS]``: one dataset rendered by a Ray cluster.

One long-lived actor per GPU (per CPU slot with ``--device cpu``) loads the assets once
and then renders the frames it is handed, one at a time, writing each frame's files
itself through the same atomic writers as a single-process render (so the output folder
must be on storage every node sees). The driver hands out frames dynamically: a worker
gets the next frame as soon as it returns one, so a slow node takes fewer frames instead
of holding the rest back. A worker that dies (node lost, actor killed) loses only the
frame it was writing: that frame goes back to the queue for the others; when no worker
is left, the run stops and the same command resumes.

The driver plans, claims and assembles the folder exactly as a single-process render
(:mod:`gs_backend.dataset.render_run`): the same resume and refusal rules, the same
records, the same dataset files byte for byte. Ray is an optional dependency
(``pip install '.[ray]'``); nothing else imports this module.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from gs_backend import interrupt
from gs_backend.dataset.render_run import (
    FrameSelection,
    claim_run,
    finish_run,
    plan_run,
    report_non_finite,
)
from gs_backend.progress import Progress
from gs_contract.dataset import DatasetLayout
from gs_contract.errors import InputError
from gs_contract.protocol import DoneEvent, FrameEvent, LogEvent, StartEvent
from gs_contract.scenario import Scenario

ACTOR_NAME_PREFIX = "gs-frame-worker"
# Frames in flight per worker: while one frame's labels are derived, encoded and written
# (a second actor thread), the next one renders, as the single-process render overlaps
# them with its writer threads.
FRAMES_PER_WORKER = 2
INSTALL_HINT = "Ray is not installed: pip install 'gs-dataset-studio[ray]' (or ray)"


class FrameWorker:
    """A Ray actor: the scenario's assets on one device, rendering and writing frames.

    Args:
        scenario_path: the scenario file (read on the worker's node).
        out_dir: the output folder (the same path on every node).
        fingerprint: the scenario's fingerprint, written into each frame record.
        device: ``cpu`` or ``cuda`` (Ray sets ``CUDA_VISIBLE_DEVICES`` to this actor's GPU).
        rasterizer: as ``--rasterizer``.
        cpu_threads: torch threads on a CPU worker (its share of the node's cores).
    """

    def __init__(self, scenario_path: str, out_dir: str, fingerprint: str, device: str,
                 rasterizer: str, cpu_threads: int) -> None:
        import torch

        from gs_backend.dataset.split import assign_splits
        from gs_backend.frame_renderer import FrameRenderer, prepare_assets
        from gs_contract.scenario import load_scenario

        if device == "cpu":
            torch.set_num_threads(max(1, cpu_threads))
        self.device = torch.device("cuda", 0) if device == "cuda" else torch.device("cpu")
        # Bad input is kept for info() to report: raised here it would reach the driver
        # as a dead actor, without the InputError's one-line message.
        self.error: InputError | None = None
        try:
            self.scenario = load_scenario(Path(scenario_path))
            self.assets = prepare_assets(self.scenario, self.device)
        except InputError as exc:
            self.error = exc
            return
        self.renderer = FrameRenderer(self.scenario, self.assets, self.device,
                                      rasterizer)  # type: ignore[arg-type]
        self.layout = DatasetLayout(Path(out_dir))
        self.fingerprint = fingerprint
        self.splits = assign_splits([f.name for f in self.scenario.frames],
                                    self.scenario.output.val_fraction,
                                    self.scenario.output.split_seed)
        self.render_lock = threading.Lock()  # one frame renders at a time; writes overlap

    def info(self) -> dict[str, Any]:
        """What the driver reports: Gaussians loaded and non-finite ones dropped; or the
        bad input met (see :func:`_error_fields`)."""
        if self.error is not None:
            return _error_fields(self.error)
        return {"gaussians": {n: a.gaussians.count for n, a in self.assets.items()},
                "non_finite": {n: a.non_finite for n, a in self.assets.items() if a.non_finite}}

    def render(self, index: int) -> dict[str, Any]:
        """Render frame ``index`` (position in the scenario) and write its files."""
        from gs_backend.dataset.frame_outputs import FrameJob, write_frame

        frame = self.scenario.frames[index]
        with self.render_lock:
            images = self.renderer.render(frame)
        try:
            record = write_frame(FrameJob(self.layout, self.scenario, self.fingerprint, frame,
                                          self.splits[frame.name], images))
        except InputError as exc:  # an unwritable file, named
            return _error_fields(exc)
        return {"name": frame.name, "split": record["split"],
                "instances": sum(i["labelled"] for i in record["instances"])}


def render_dataset_ray(scenario: Scenario, out_dir: Path, selection: FrameSelection, *,
                       device: str, overwrite: bool, rasterizer: str, progress: Progress,
                       address: str | None = None, workers: int | None = None) -> DoneEvent:
    """Render the selected frames of ``scenario`` into ``out_dir`` on Ray workers.

    ``device``: ``auto`` (GPUs when the cluster has any), ``cpu`` or ``cuda``/``cuda:N``
    (one GPU per worker; Ray chooses which). ``address``: a Ray cluster (None: the one in
    ``RAY_ADDRESS``, else a local one). ``workers``: how many actors (default: one per
    GPU, or per CPU with ``cpu``).

    Raises:
        InputError: Ray is missing, bad input, an unwritable folder, or every worker died
            (finished frames are kept).
        KeyboardInterrupt: Ctrl-C (the workers are stopped; the folder stays resumable).
    """
    try:
        import ray
    except ImportError:
        raise InputError("--ray", None, INSTALL_HINT) from None
    t0 = time.perf_counter()
    run = plan_run(scenario, out_dir, selection, overwrite=overwrite)
    layout, fingerprint, todo = run.layout, run.fingerprint, run.todo

    actors: list[Any] = []
    infos: list[dict[str, Any]] = []
    kind = "cpu"
    started_ray = False
    try:
        if todo:
            if not ray.is_initialized():
                with interrupt.deferred():
                    ray.init(address=address, include_dashboard=False, log_to_driver=False)
                started_ray = True
            kind = _device_kind(device, ray.cluster_resources())
            actors = _start_workers(ray, scenario, layout, fingerprint, kind, rasterizer,
                                    workers)
            infos = _gather(ray, [a.info.remote() for a in actors])
        interrupt.checkpoint()  # last moment that leaves the folder untouched
        claimed = claim_run(run, scenario, selection, overwrite=overwrite, device=kind)
        todo, skipped, selected = claimed.todo, claimed.skipped, run.selected
        info = infos[0] if infos else {"gaussians": {}, "non_finite": {}}
        report_non_finite(layout, scenario, info["non_finite"] if infos else None, progress)
        progress.emit(StartEvent(total=len(selected), skipped=skipped,
                                 device=f"ray:{kind} x{len(actors)}", out=str(layout.root),
                                 gaussians=info["gaussians"]))
        finished = skipped

        def on_frame(summary: dict[str, Any]) -> None:
            nonlocal finished
            finished += 1
            progress.emit(FrameEvent(done=finished, total=len(selected), name=summary["name"],
                                     split=summary["split"], instances=summary["instances"],
                                     seconds=round(time.perf_counter() - t0, 3)))

        _dispatch(ray, actors, [f.index for f in todo], on_frame, progress)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started_ray:
            ray.shutdown()

    return finish_run(run, claimed, scenario, device=kind, t0=t0, progress=progress)


def _device_kind(device: str, resources: dict[str, float]) -> str:
    spec = device.strip().lower()
    if spec == "auto":
        return "cuda" if resources.get("GPU", 0) >= 1 else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "cuda" or spec.startswith("cuda:"):
        if resources.get("GPU", 0) < 1:
            raise InputError("--device", None, f"{device} requested but the Ray cluster has "
                                               "no GPU")
        return "cuda"
    raise InputError("--device", None, f"with --ray: expected auto, cpu or cuda, got {device!r}")


def _start_workers(ray: Any, scenario: Scenario, layout: DatasetLayout, fingerprint: str,
                   kind: str, rasterizer: str, workers: int | None) -> list[Any]:
    resources = ray.cluster_resources()
    slots = int(resources.get("GPU" if kind == "cuda" else "CPU", 1))
    count = workers or max(1, slots)
    if kind == "cuda":
        options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
        threads = 1
    else:
        threads = max(1, slots // count)
        options = {"num_cpus": threads}
    actor_class = ray.remote(FrameWorker)
    return [actor_class.options(name=f"{ACTOR_NAME_PREFIX}-{i}",
                                max_concurrency=FRAMES_PER_WORKER, **options).remote(
                str(scenario.path.resolve()), str(layout.root.resolve()), fingerprint, kind,
                rasterizer, threads)
            for i in range(count)]


def _error_fields(exc: InputError) -> dict[str, Any]:
    """An InputError as plain data (it does not survive pickling: its constructor takes
    three arguments), for :func:`_gather` to raise again on the driver."""
    return {"input_error": [exc.source, exc.field, exc.problem]}


def _gather(ray: Any, refs: list[Any]) -> list[Any]:
    """``ray.get``, raising a worker's InputError again on the driver."""
    results = ray.get(refs)
    for result in results:
        if "input_error" in result:
            raise InputError(*result["input_error"])
    return results


def _dispatch(ray: Any, actors: list[Any], indices: list[int], on_frame: Any,
              progress: Progress) -> None:
    """Hand frame ``indices`` to ``actors`` (``FRAMES_PER_WORKER`` each at a time) until
    all are written. A dead actor's frames go back to the queue; with no actor left,
    raise InputError."""
    queue = deque(indices)
    idle = [a for a in actors for _ in range(FRAMES_PER_WORKER)]  # free slots
    pending: dict[Any, tuple[Any, int]] = {}
    dead: set[int] = set()
    while queue or pending:
        while idle and queue:
            actor, index = idle.pop(), queue.popleft()
            pending[actor.render.remote(index)] = (actor, index)
        interrupt.checkpoint()
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            actor, index = pending.pop(ref)
            try:
                summary = _gather(ray, [ref])[0]
            except ray.exceptions.RayActorError as exc:
                queue.appendleft(index)
                if id(actor) in dead:
                    continue
                dead.add(id(actor))
                idle = [a for a in idle if id(a) not in dead]
                alive = len(actors) - len(dead)
                progress.emit(LogEvent("warning", f"a Ray worker died ({alive} left): "
                                                  f"{str(exc).splitlines()[0]}"))
                if alive == 0:
                    raise InputError("--ray", None, "every Ray worker died; finished frames "
                                                    "are kept: run the same command to "
                                                    "resume") from None
                continue
            idle.append(actor)
            on_frame(summary)
