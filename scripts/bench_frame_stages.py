"""Benchmark: where a labelled frame's time goes, stage by stage (CPU workload).

Renders the `bench_render.py` cpu workload (640x480, 200k Gaussians, demo camera path)
frame by frame, serially (render, then write; no thread pool, so stages do not
overlap), and times each stage by wrapping the functions that implement it:

  render side (main thread): posing, composite assembly, SH colours, rasterize
  write side (writer threads in a real run): labels (visible map + boxes), RGB PNG
  encoding, mask PNG, COCO RLE, atomic writes

The first frame (kernel loading, posing of static objects) is left out. Numbers are
milliseconds per frame (sum over a frame's calls, mean over frames) and the median per
call. Run it next to `bench_render.py`, which measures the end-to-end rate with the
writer threads overlapping. To measure an older checkout with this script:
``PYTHONPATH=OLD_TREE python scripts/bench_frame_stages.py`` from this tree.

Usage: python scripts/bench_frame_stages.py [--frames N] [--rasterizer numba|torch]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

import bench_render

from gs_backend import frame_renderer
from gs_backend.dataset import frame_outputs
from gs_backend.dataset.split import assign_splits
from gs_contract.dataset import DatasetLayout
from gs_contract.scenario import load_scenario

LAPS: dict[str, list[float]] = {}


def _timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            LAPS.setdefault(stage, []).append(time.perf_counter() - t0)
    return wrapped


def _instrument() -> None:
    """Wrap each stage's function where the renderer and the writer look it up."""
    fr, fo = frame_renderer, frame_outputs
    fr.pose_gaussians = _timed("posing", fr.pose_gaussians)
    if hasattr(fr.FrameRenderer, "_composite_for"):
        fr.FrameRenderer._composite_for = _timed("composite", fr.FrameRenderer._composite_for)
    else:  # an older tree, which concatenated the objects every frame
        fr._geometry = _timed("composite", fr._geometry)
    fr.gaussian_colors = _timed("SH colours", fr.gaussian_colors)
    fr.rasterize = _timed("rasterize", fr.rasterize)
    fo.frame_labels = _timed("labels", fo.frame_labels)
    fo.encode_rgb = _timed("RGB PNG", fo.encode_rgb)
    fo.encode_png = _timed("mask PNG", fo.encode_png)
    fo.rle_encode = _timed("COCO RLE", fo.rle_encode)
    fo.write_output = _timed("atomic writes", fo.write_output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--rasterizer", choices=("numba", "torch"), default="numba")
    args = parser.parse_args()
    w = bench_render.Workload(**{**bench_render.WORKLOADS["cpu"].__dict__,
                                 "frames": max(2, args.frames)})
    _instrument()
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        scenario = load_scenario(bench_render.build_scene(Path(tmp), w))
        renderer = frame_renderer.FrameRenderer(
            scenario, frame_renderer.prepare_assets(scenario, device), device,
            args.rasterizer)
        layout = DatasetLayout(Path(tmp) / "out")
        splits = assign_splits([f.name for f in scenario.frames],
                               scenario.output.val_fraction, scenario.output.split_seed)
        totals: dict[str, list[float]] = {"render (main thread)": [], "write (writer)": []}
        for i, frame in enumerate(scenario.frames):
            if i == 1:
                LAPS.clear()
            t0 = time.perf_counter()
            images = renderer.render(frame)
            t1 = time.perf_counter()
            frame_outputs.write_frame(frame_outputs.FrameJob(
                layout, scenario, "bench", frame, splits[frame.name], images))
            t2 = time.perf_counter()
            if i:
                totals["render (main thread)"].append(t1 - t0)
                totals["write (writer)"].append(t2 - t1)
    frames = w.frames - 1
    print(f"{w.tissue + 2 * w.instrument:,} Gaussians {w.width}x{w.height}, "
          f"{args.rasterizer}, frames 2..{w.frames}, torch threads {torch.get_num_threads()}")
    print(f"{'stage':<22}{'ms/frame':>10}{'median/call':>13}{'calls':>7}")
    for name, values in totals.items():
        print(f"{name:<22}{1000 * statistics.mean(values):>10.1f}")
    for name, laps in LAPS.items():
        print(f"  {name:<20}{1000 * sum(laps) / frames:>10.1f}"
              f"{1000 * statistics.median(laps):>13.2f}{len(laps):>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
