"""Benchmark: automatic instrument extraction of a 1M-Gaussian orbit capture.

Builds a labelled synthetic capture (:func:`gs_backend.synthetic.capture.make_capture`,
about 1,000,000 rows: needle driver, table, room, floaters, halos) and times
:func:`gs_backend.extract.auto.auto_extract` on it in a fresh child process that loads
only the arrays it needs (means, scales, opacities), so the peak memory reported is the
extraction's own (numpy + scipy + the arrays), not the generator's (torch).
Targets (issue 7): <= 10 s and <= 2 GB on 2 cores. It also prints precision, recall and
and the share of halo rows kept.

Run: ``.venv/bin/python scripts/bench_extract.py [--tool-count N] [--runs R]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS


def run_child(path: Path, runs: int) -> dict:
    """In this (child) process: load the arrays, extract ``runs`` times, report."""
    from gs_backend.extract.auto import auto_extract

    arrays = np.load(path)
    means, scales, opacities = arrays["means"], arrays["scales"], arrays["opacities"]
    candidates = np.ones(means.shape[0], dtype=bool)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = auto_extract(means, scales, opacities, candidates)
        times.append(time.perf_counter() - start)
    labels = arrays["labels"]
    tool = labels == 0
    hits = int((result.keep & tool).sum())
    return {
        "rows": int(means.shape[0]), "kept": int(result.keep.sum()),
        "seconds": times, "peak_rss_mb": round(peak_rss_mb(), 1),
        "precision": hits / max(int(result.keep.sum()), 1), "recall": hits / int(tool.sum()),
        "halo_kept": float(result.keep[labels == 4].mean()),
        "stages": [(s.name, s.removed) for s in result.stages],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool-count", type=int, default=450_000,
                        help="Gaussians on the instrument (the capture is about 2x)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(Path(args.child), args.runs)))
        return

    from gs_backend.synthetic.capture import make_capture

    start = time.perf_counter()
    capture = make_capture("needle_driver", tool_count=args.tool_count, floor_density=0.07,
                           background_share=0.3, floater_share=0.08, halo_share=0.06,
                           scale=0.37, seed=1)
    made = time.perf_counter() - start
    counts = np.bincount(capture.labels, minlength=5)
    print(f"capture: {capture.count:,} rows (tool {counts[0]:,}, table {counts[1]:,}, "
          f"room {counts[2]:,}, floaters {counts[3]:,}, halos {counts[4]:,}), "
          f"made in {made:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "capture.npz"
        np.savez(path, means=capture.means, scales=capture.scales,
                 opacities=capture.opacities, labels=capture.labels)
        out = subprocess.run([sys.executable, __file__, "--child", str(path),
                              "--runs", str(args.runs)], check=True, capture_output=True,
                             text=True, cwd=ROOT).stdout
    result = json.loads(out)
    seconds = result["seconds"]
    print(f"auto_extract: best {min(seconds):.2f} s (runs {', '.join(f'{t:.2f}' for t in seconds)}"
          f"), peak RSS {result['peak_rss_mb']:.0f} MB (child process: numpy, scipy, arrays)")
    print(f"kept {result['kept']:,}: precision {result['precision']:.4f}, "
          f"recall {result['recall']:.4f}, halo kept {100 * result['halo_kept']:.1f} %")
    print("stages:", ", ".join(f"{name} -{removed:,}" for name, removed in result["stages"]))


if __name__ == "__main__":
    main()
