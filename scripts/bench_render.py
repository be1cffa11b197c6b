"""Benchmark: labelled frames per second, end to end vs bare rasterization.

Workloads (DESIGN.md targets table):
  cpu:  640x480, 200k Gaussians (tissue 160k + 2 instruments x 20k), numba rasterizer
        (`--rasterizer torch` for the eager-torch one)
  cuda: 640x640, 1.2M Gaussians (tissue 1M + 2 instruments x 100k), gsplat (only with CUDA)

For each workload, in one process and on the same frames of the demo camera path:
  bare       - only `gs_backend.raster.rasterize` of the already-posed, already-coloured
               composite (RGB + one weight channel per instrument)
  end to end - `render_dataset`: posing, SH colours, rasterization, labels, PNG encoding,
               atomic writes, manifest and COCO assembly (asset loading excluded)
and the ratio end-to-end / bare. Peak memory: process RSS (ru_maxrss) on CPU,
torch.cuda.max_memory_allocated on CUDA.

Usage: python scripts/bench_render.py [--workload cpu|cuda|all] [--frames N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gs_backend.dataset.render_run import RenderOptions, render_dataset
from gs_backend.frame_renderer import FrameRenderer, prepare_assets
from gs_backend.gaussians import Gaussians
from gs_backend.io.inria_ply import save_inria_ply
from gs_backend.raster import RasterBackend, rasterize
from gs_backend.sh import gaussian_colors
from gs_backend.synthetic.demo_scenario import demo_scenario_dict
from gs_backend.synthetic.instrument import make_needle_driver
from gs_backend.synthetic.tissue import make_tissue
from gs_contract.atomic import write_text_atomic
from gs_contract.protocol import DoneEvent, ErrorEvent, Event, LogEvent, StartEvent
from gs_contract.scenario import load_scenario


@dataclass(frozen=True)
class Workload:
    name: str
    device: str
    width: int
    height: int
    tissue: int
    instrument: int
    frames: int


WORKLOADS = {
    "cpu": Workload("cpu", "cpu", 640, 480, 160_000, 20_000, frames=8),
    "cuda": Workload("cuda", "cuda", 640, 640, 1_000_000, 100_000, frames=300),
}


class _Timer:
    """A Progress that records when rendering starts and ends (asset loading excluded)."""

    def __init__(self) -> None:
        self.t_start = self.t_end = 0.0

    def emit(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            _sync()
            self.t_start = time.perf_counter()
        elif isinstance(event, DoneEvent):
            _sync()
            self.t_end = time.perf_counter()
        elif isinstance(event, (LogEvent, ErrorEvent)):
            level = event.level if isinstance(event, LogEvent) else "error"
            print(f"  {level}: {event.message}", file=sys.stderr)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_scene(folder: Path, w: Workload) -> Path:
    """Write the workload's assets and a scenario on the demo camera path."""
    assets = folder / "assets"
    makers = {
        "tissue": lambda: make_tissue(w.tissue, seed=0, size_m=0.24),
        "needle_driver": lambda: make_needle_driver(w.instrument, seed=1),
        "grasper": lambda: make_needle_driver(w.instrument, seed=2, jaw_opening_deg=38.0),
    }
    for name, make in makers.items():
        save_inria_ply(assets / f"{name}.ply", make())
    scenario = demo_scenario_dict(frames=w.frames, width=w.width, height=w.height)
    path = folder / "scenario.json"
    write_text_atomic(path, json.dumps(scenario))
    return path


def bench_bare(scenario_path: Path, device: torch.device, backend: RasterBackend) -> list[float]:
    """Seconds per frame of rasterization alone (posing and colours done beforehand)."""
    scenario = load_scenario(scenario_path)
    renderer = FrameRenderer(scenario, prepare_assets(scenario, device), device)
    times = []
    for frame in scenario.frames:
        parts, channels = [], []
        for name, obj in scenario.objects.items():
            if name in frame.poses:
                g = renderer.posed(name, frame.similarities[name])
                parts.append(g)
                ch = torch.zeros(g.count, renderer.num_instances, device=device)
                if obj.instance_id is not None:
                    ch[:, obj.instance_id - 1] = 1
                channels.append(ch)
        scene = Gaussians.concat(parts)
        cam = frame.camera
        w2c = torch.as_tensor(cam.world_to_camera, dtype=torch.float32, device=device)
        center = torch.as_tensor(cam.center, dtype=torch.float32, device=device)
        colors = torch.cat([gaussian_colors(scene.sh, scene.means, center),
                            torch.cat(channels)], dim=1)
        K = torch.as_tensor(cam.K, dtype=torch.float32, device=device)
        _sync()
        t0 = time.perf_counter()
        rasterize(scene.means, scene.quats, scene.scales, scene.opacities, colors, w2c, K,
                  cam.width, cam.height, backend=backend)
        _sync()
        times.append(time.perf_counter() - t0)
    return times


def bench_end_to_end(scenario_path: Path, device: torch.device, out: Path,
                     backend: RasterBackend) -> float:
    """Seconds per labelled frame through the whole dataset writer."""
    scenario = load_scenario(scenario_path)
    timer = _Timer()
    render_dataset(scenario, RenderOptions(out_dir=out, device=device, backend=backend), timer)
    return (timer.t_end - timer.t_start) / len(scenario.frames)


def run(w: Workload, frames: int | None, backend: RasterBackend) -> dict[str, Any]:
    if frames:
        w = Workload(**{**w.__dict__, "frames": frames})
    device = torch.device(w.device, 0) if w.device == "cuda" else torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix=f"bench-{w.name}-") as tmp:
        folder = Path(tmp)
        print(f"[{w.name}] building {w.tissue + 2 * w.instrument:,} Gaussians ...",
              file=sys.stderr)
        scenario = build_scene(folder, w)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        print(f"[{w.name}] bare rasterization, {w.frames} frames ...", file=sys.stderr)
        bare = bench_bare(scenario, device, backend)
        bare_s = statistics.median(bare[1:] if len(bare) > 2 else bare)  # skip warm-up
        print(f"[{w.name}] end to end, {w.frames} frames ...", file=sys.stderr)
        e2e_s = bench_end_to_end(scenario, device, folder / "out", backend)
    result = {
        "workload": w.name, "device": str(device), "rasterizer": backend,
        "width": w.width, "height": w.height,
        "gaussians": w.tissue + 2 * w.instrument, "frames": w.frames,
        "bare_s_per_frame": round(bare_s, 4),
        "end_to_end_s_per_frame": round(e2e_s, 4),
        "end_to_end_frames_per_s": round(1.0 / e2e_s, 2),
        "overhead_vs_bare": round(e2e_s / bare_s - 1.0, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name(device)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("cpu", "cuda", "all"), default="all")
    parser.add_argument("--frames", type=int, default=None, help="override the frame count")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--rasterizer", choices=("auto", "numba", "torch"), default="auto")
    args = parser.parse_args()
    names = ["cpu", "cuda"] if args.workload == "all" else [args.workload]
    results = []
    for name in names:
        if name == "cuda" and not torch.cuda.is_available():
            print("[cuda] skipped: CUDA is not available", file=sys.stderr)
            continue
        results.append(run(WORKLOADS[name], args.frames, args.rasterizer))
    machine = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
               "torch": torch.__version__, "cpu_threads": torch.get_num_threads(),
               "platform": platform.platform()}
    for r in results:
        print(f"{r['workload']:>4} ({r['rasterizer']}): {r['gaussians']:,} Gaussians "
              f"{r['width']}x{r['height']} "
              f"on {r['device']}: bare {r['bare_s_per_frame'] * 1000:.1f} ms/frame, "
              f"end to end {r['end_to_end_s_per_frame'] * 1000:.1f} ms/frame "
              f"({r['end_to_end_frames_per_s']:.2f} labelled frames/s, "
              f"{100 * r['overhead_vs_bare']:+.0f}% vs bare), peak RSS {r['peak_rss_mb']:.0f} MB")
    if args.json:
        write_text_atomic(args.json, json.dumps({"machine": machine, "results": results},
                                                indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
