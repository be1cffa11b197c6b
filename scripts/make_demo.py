#!/usr/bin/env python
"""Build the bundled demo and render it: ``python scripts/make_demo.py --out DIR``.

1. DIR/assets/*.ply and DIR/scenario.json: procedural stand-ins for a captured
   tissue splat and two instrument splats, and a laparoscopic scenario.
2. DIR/dataset/: the labelled dataset, rendered by ``gs-backend render``.
3. DIR/contact_sheet.png: every frame with its boxes, classes and mask outlines.

Re-running is cheap: assets whose parameters have not changed are kept, and the
render resumes, making only the frames that are missing. When the assets or the
scenario did change (other counts, sizes or frame count), the stale dataset is
rendered afresh.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the assets, scenario, dataset and contact sheet")
    parser.add_argument("--frames", type=int, default=24, metavar="N",
                        help="number of frames in the demo scenario (default 24)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to render (default auto: CUDA when available)")
    parser.add_argument("--width", type=int, default=640, help="image width (default 640)")
    parser.add_argument("--height", type=int, default=480, help="image height (default 480)")
    parser.add_argument("--tissue-count", type=int, default=150_000, metavar="N",
                        help="Gaussians in the tissue asset (default 150000)")
    parser.add_argument("--instrument-count", type=int, default=25_000, metavar="N",
                        help="Gaussians in each instrument asset (default 25000)")
    args = parser.parse_args(argv)
    for name in ("frames", "width", "height", "tissue_count", "instrument_count"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    from gs_backend.cli import main as backend_main
    from gs_backend.contact_sheet import make_contact_sheet
    from gs_backend.synthetic.demo_scenario import build_demo

    out: Path = args.out
    started = time.perf_counter()
    print(f"[1/3] building the demo assets and scenario in {out}")
    inputs_before = _demo_inputs(out)
    scenario = build_demo(out, frames=args.frames, width=args.width, height=args.height,
                          tissue_count=args.tissue_count,
                          instrument_count=args.instrument_count)
    changed = _demo_inputs(out) != inputs_before

    dataset = out / "dataset"
    render_args = ["render", str(scenario), "--out", str(dataset),
                   "--device", args.device, "--progress", "bar"]
    if changed and dataset.exists():
        print("      the demo's assets or scenario changed: rendering the dataset afresh")
        render_args.append("--overwrite")
    print(f"[2/3] rendering {args.frames} frames into {dataset}")
    code = backend_main(render_args)
    if code != 0:
        print(f"make_demo: the render stopped with exit code {code}; run the same command "
              "again to resume", file=sys.stderr)
        return code

    sheet = out / "contact_sheet.png"
    print(f"[3/3] drawing the contact sheet {sheet}")
    make_contact_sheet(dataset, sheet)

    elapsed = time.perf_counter() - started
    print(f"\ndone in {elapsed:.0f} s")
    print(f"  scenario:      {scenario}")
    print(f"  assets:        {out / 'assets'}")
    print(f"  dataset:       {dataset}  (images/, labels/, masks/, annotations/, data.yaml)")
    print(f"  contact sheet: {sheet}")
    return 0


def _demo_inputs(out: Path) -> tuple[str, str] | None:
    """The asset stamp and scenario text of an earlier build in ``out``, if complete."""
    from gs_backend.synthetic.demo_scenario import ASSET_STAMP, SCENARIO_NAME

    stamp, scenario = out / ASSET_STAMP, out / SCENARIO_NAME
    if not (stamp.is_file() and scenario.is_file()):
        return None
    return stamp.read_text(encoding="utf-8"), scenario.read_text(encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
