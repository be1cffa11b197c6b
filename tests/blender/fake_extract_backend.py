"""A stand-in for ``gs-backend extract`` (DESIGN contract 7, the agreed command line).

Usage, as the backend command: ``python fake_extract_backend.py [--mode M] extract
CAPTURE --out TOOL.ply [--keep-out KEEP.npy] [--json] [--crop CROP.json] [--no-auto]``.

It implements the contract minimally, independently of the add-on's code: it reads the
capture with ``gs_contract.splats.read_splat_file``, drops the unusable rows, applies the
crop file's volumes to the Gaussian centres (a centre passes when it lies inside at least
one ``keep`` volume, if there is one, and inside no ``remove`` volume; each volume is its
unit shape mapped by ``capture_from_volume``), then a stand-in for the automatic method:
it removes every row whose index is a multiple of :data:`AUTO_MODULUS`. It writes the kept
rows to TOOL.ply, their indices to KEEP.npy (int64, sorted) and prints the JSON report.
A selection that keeps nothing exits 2 naming the stage. Modes:

- ``ok``: as above, exit 0;
- ``fail``: one ``gs-backend: error: ...`` line on stderr naming the capture, exit 2;
- ``crash``: a traceback on stderr, exit 1;
- ``wait``: wait for Ctrl-C (SIGINT), then exit 130 writing nothing;
- ``garbled``: exit 0 with text that is not JSON on stdout;
- ``badkeep``: exit 0, but KEEP.npy holds a row outside the capture.

With the environment variable ``GSDS_FAKE_RECORD`` set to a folder, it writes its argv
there (``argv.json``), a copy of the crop file (``crop.json``) and, in mode ``wait``,
``waiting`` once it is ready for Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # gs_contract
from gs_contract.splats import read_splat_file, usable_rows
from gs_contract.splats.inria import save_inria_ply

MODES = ("ok", "fail", "crash", "wait", "garbled", "badkeep")
AUTO_MODULUS = 5
LONG_WAIT_S = 300.0  # "forever", but a failed test never leaves a process for good
RECORD_ENV = "GSDS_FAKE_RECORD"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake_extract_backend")
    parser.add_argument("--mode", default="ok", choices=MODES)
    sub = parser.add_subparsers(dest="command", required=True)
    extract = sub.add_parser("extract")
    extract.add_argument("capture", type=Path)
    extract.add_argument("--out", type=Path, required=True)
    extract.add_argument("--keep-out", type=Path, default=None)
    extract.add_argument("--json", action="store_true")
    extract.add_argument("--crop", type=Path, default=None)
    extract.add_argument("--no-auto", action="store_true")
    return parser.parse_args(argv)


def inside(shape: str, p: np.ndarray) -> np.ndarray:
    """``[N]`` bool: points ``p`` ``[N, 3]`` (volume coordinates) inside the unit shape."""
    if shape == "box":
        return np.all(np.abs(p) <= 1.0, axis=1)
    if shape == "sphere":
        return np.sum(p * p, axis=1) <= 1.0
    assert shape == "cylinder", shape
    return (p[:, 0] ** 2 + p[:, 1] ** 2 <= 1.0) & (np.abs(p[:, 2]) <= 1.0)


def crop(means: np.ndarray, document: dict) -> np.ndarray:
    """``[N]`` bool: the centres that pass the crop volumes."""
    assert document["format"] == "gs-crop" and document["version"] == 1, document
    homogeneous = np.concatenate([means.astype(np.float64), np.ones((len(means), 1))], axis=1)
    keep_any = np.zeros(len(means), dtype=bool)
    remove_any = np.zeros(len(means), dtype=bool)
    has_keep = False
    for volume in document["volumes"]:
        volume_from_capture = np.linalg.inv(np.array(volume["capture_from_volume"]))
        local = (homogeneous @ volume_from_capture.T)[:, :3]
        hit = inside(volume["shape"], local)
        if volume["mode"] == "keep":
            has_keep = True
            keep_any |= hit
        else:
            assert volume["mode"] == "remove", volume
            remove_any |= hit
    return (keep_any if has_keep else np.ones(len(means), dtype=bool)) & ~remove_any


def main(argv: list[str]) -> int:
    # As gs_backend.interrupt.install: SIGINT means "stop" even if we were started with
    # it ignored (a shell's background jobs are, and children inherit that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parse(argv)
    record = os.environ.get(RECORD_ENV)
    if record:
        Path(record, "argv.json").write_text(json.dumps(argv))
        if args.crop is not None:
            shutil.copy(args.crop, Path(record, "crop.json"))
    if args.mode == "fail":
        print(f"gs-backend: error: {args.capture}: property scale_0: not a number",
              file=sys.stderr)
        return 2
    if args.mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: boom", file=sys.stderr)
        return 1
    if args.mode == "wait":
        try:
            if record:
                Path(record, "waiting").write_text("yes")
            time.sleep(LONG_WAIT_S)
        except KeyboardInterrupt:
            print("gs-backend: interrupted", file=sys.stderr)
            return 130
        return 1
    splat = read_splat_file(args.capture)
    rows = np.arange(splat.count)
    usable = usable_rows(splat)
    stages = [{"name": "unusable", "removed": int((~usable).sum()), "params": {}}]
    keep = usable.copy()
    if args.crop is not None:
        document = json.loads(args.crop.read_text(encoding="utf-8"))
        before = int(keep.sum())
        keep &= crop(splat.means, document)
        stages.append({"name": "crop", "removed": before - int(keep.sum()),
                       "params": {"volumes": len(document["volumes"])}})
        if not keep.any():
            print(f"gs-backend: error: {args.crop}: the crop volumes keep no Gaussian",
                  file=sys.stderr)
            return 2
    if not args.no_auto:
        before = int(keep.sum())
        keep &= rows % AUTO_MODULUS != 0
        stages.append({"name": "auto.fake", "removed": before - int(keep.sum()),
                       "params": {"modulus": AUTO_MODULUS}})
    kept = rows[keep].astype(np.int64)
    save_inria_ply(args.out, splat.means[keep], splat.quats[keep], splat.scales[keep],
                   splat.opacities[keep], splat.sh[keep])
    if args.keep_out is not None:
        np.save(args.keep_out, np.array([splat.count]) if args.mode == "badkeep" else kept)
    if args.mode == "garbled":
        print("Extracting... done")
        return 0
    report = {"capture": str(args.capture.absolute()), "format": splat.format,
              "rows": splat.count, "usable": int(usable.sum()), "kept": int(kept.size),
              "removed": splat.count - int(kept.size), "stages": stages,
              "out": str(args.out.absolute()),
              "keep_out": None if args.keep_out is None else str(args.keep_out.absolute()),
              "preview": None}
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
