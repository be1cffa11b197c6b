"""Benchmark: import a 1M-Gaussian SH-degree-3 Inria PLY into Blender.

Times ``bpy.ops.gsds.import_ply`` (point proxy with attributes and the display
modifier) against Blender's own ``bpy.ops.wm.ply_import`` on the same file, each the
median of several runs on a fresh empty scene, and prints the ratio (target: <= 1.5).
A second pair of figures adds the first depsgraph evaluation (what the viewport pays
before the first draw: for the proxy, the geometry-nodes modifier).

Run with the bpy module (``.venv-blender/bin/python scripts/bench_import.py``) or with
``blender -b --python scripts/bench_import.py -- [options]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_inria_ply(path: Path, count: int, sh_degree: int, seed: int = 0) -> None:
    """A binary little-endian Inria PLY with normals and random plausible values."""
    import numpy as np

    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, 0.5, (count, len(names))).astype("<f4")
    col = {name: i for i, name in enumerate(names)}
    table[:, col["nx"]:col["nz"] + 1] = 0.0
    table[:, col["scale_0"]:col["scale_2"] + 1] -= 4.0  # log scales around e^-4
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(table.tobytes())


def time_import(operator, path: Path, runs: int, evaluate: bool) -> list[float]:
    """Seconds per run of ``operator(filepath=path)`` on a fresh empty scene."""
    import bpy

    times = []
    for _ in range(runs):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        start = time.perf_counter()
        operator(filepath=str(path))
        if evaluate:
            bpy.context.evaluated_depsgraph_get()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="Gaussians in the file")
    parser.add_argument("--sh-degree", type=int, default=3, choices=(0, 1, 2, 3))
    parser.add_argument("--runs", type=int, default=3, help="runs per operator (median)")
    args = parser.parse_args(argv)

    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="gsds-bench-"))
    sys.path.insert(0, str(ROOT))
    import bpy

    import blender_addon

    with tempfile.TemporaryDirectory(prefix="gsds-bench-") as folder:
        path = Path(folder) / "bench.ply"
        write_inria_ply(path, args.count, args.sh_degree)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {args.count:,} Gaussians, SH degree {args.sh_degree}, {size_mb:.0f} MB; "
              f"Blender {bpy.app.version_string}; median of {args.runs}")
        blender_addon.register()
        try:
            results = {}
            for evaluate in (False, True):
                ours = time_import(bpy.ops.gsds.import_ply, path, args.runs, evaluate)
                theirs = time_import(bpy.ops.wm.ply_import, path, args.runs, evaluate)
                results[evaluate] = (statistics.median(ours), statistics.median(theirs))
        finally:
            blender_addon.unregister()
    for evaluate, (ours, theirs) in results.items():
        label = "operator + first evaluation" if evaluate else "operator"
        print(f"{label:28s} gsds.import_ply {ours:6.3f} s | wm.ply_import {theirs:6.3f} s | "
              f"ratio {ours / theirs:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
