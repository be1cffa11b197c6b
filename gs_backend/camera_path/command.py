"""``gs-backend camera-path SOURCE --base BASE.json --out SCENARIO.json``: one scenario
frame per solved image of a COLMAP model or a nerfstudio ``transforms.json``.

The reading is :mod:`gs_contract.camera_paths` (pure, shared with the add-on); this module
finds what SOURCE is, applies the options, rewrites asset paths relative to the written
file, checks the result with the scenario parser and writes it atomically. On any refusal
nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gs_contract.camera_paths import (
    RegisteredImage,
    find_colmap_model,
    name_filter,
    read_colmap_model,
    read_transforms_json,
)
from gs_contract.camera_paths.colmap import FILES
from gs_contract.camera_paths.scenario import camera_path_scenario
from gs_contract.errors import InputError
from gs_contract.scenario import write_scenario_file

COLMAP_FILES = frozenset(name for pair in FILES.values() for name in pair)


def add_camera_path_parser(sub: argparse._SubParsersAction) -> None:
    """The ``camera-path`` subcommand's options."""
    p = sub.add_parser(
        "camera-path", help="scenario frames from a COLMAP model or a nerfstudio transforms.json",
        description="Write a gs-scenario with one frame per registered image of SOURCE (its "
                    "own size, intrinsics and pose), named after the image's file stem and "
                    "sorted by image name. See docs/replay.md.")
    p.add_argument("source", type=Path, metavar="SOURCE",
                   help="a COLMAP model folder (cameras+images .bin or .txt; a workspace or "
                        "sparse folder above sparse/0 works) or a nerfstudio transforms.json")
    p.add_argument("--base", type=Path, required=True, metavar="BASE.json",
                   help="a gs-scenario giving classes, assets, objects, render and output; "
                        "objects are posed as in its first frame, or at identity if it has "
                        "none")
    p.add_argument("--out", type=Path, required=True, metavar="SCENARIO.json",
                   help="the scenario to write (asset paths relative to it)")
    p.add_argument("--images", metavar="PATTERN",
                   help="only images whose name (or file name) matches this glob, e.g. "
                        "'*_test_*' for held-out views")
    p.add_argument("--ignore-distortion", action="store_true",
                   help="keep the pinhole part of a distorted camera (SIMPLE_RADIAL, OPENCV, "
                        "...) instead of refusing it; renders will not match distorted images")
    world = p.add_mutually_exclusive_group()
    world.add_argument("--dataparser-transforms", type=Path, metavar="FILE",
                       help="transforms.json only: nerfstudio's dataparser_transforms.json; "
                            "poses go into the space the model was trained in (where a "
                            "splatfacto PLY export lies)")
    world.add_argument("--original-world", action="store_true",
                       help="transforms.json only: undo its applied_transform (back to e.g. "
                            "the COLMAP world)")
    p.add_argument("--json", action="store_true", help="print a JSON report on stdout")


def run_camera_path_command(args: argparse.Namespace) -> int:
    """Run ``gs-backend camera-path``; return the exit code (0).

    Raises:
        InputError: bad SOURCE, base or options; nothing is written then.
    """
    source, out, base = args.source.absolute(), args.out.absolute(), args.base.absolute()
    if out.exists() and (out.resolve() in (base.resolve(), source.resolve())):
        raise InputError("--out", None, f"{out} is an input of this command; write elsewhere")
    images, kind, notes = _read(source, args)
    if not images:
        raise InputError(source, None, "no registered image" + (
            f" matches --images {args.images!r}" if args.images else "s"))
    made = camera_path_scenario(base, images, source=source)
    notes.append(f"objects posed as in the base's frame {made.poses_from!r}"
                 if made.poses_from else "objects at identity pose (the base has no frames)")
    write_scenario_file(made.scenario, out)
    report = {"source": str(source), "format": kind, "out": str(out), "frames": len(images),
              "first_frame": images[0].frame_name, "last_frame": images[-1].frame_name,
              "notes": notes}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote {len(images)} frames ({images[0].frame_name} .. "
              f"{images[-1].frame_name}) from {source.name} to {out}", file=sys.stderr)
    return 0


def _read(source: Path, args: argparse.Namespace
          ) -> tuple[list[RegisteredImage], str, list[str]]:
    """The selected images of SOURCE, its kind and notes for the report."""
    keep = name_filter(args.images)
    nerfstudio = source.suffix.lower() == ".json"
    if not nerfstudio and (args.dataparser_transforms or args.original_world):
        option = "--dataparser-transforms" if args.dataparser_transforms else "--original-world"
        raise InputError(option, None, "applies to a nerfstudio transforms.json SOURCE only")
    notes: list[str] = []
    if nerfstudio:
        world = "trained" if args.dataparser_transforms else \
            "original" if args.original_world else "file"
        images = read_transforms_json(source, world=world,
                                      dataparser_transforms=args.dataparser_transforms,
                                      ignore_distortion=args.ignore_distortion,
                                      image_filter=keep)
        kind = "nerfstudio"
        notes.append(f"poses in the {world} world" + (
            f" ({args.dataparser_transforms})" if args.dataparser_transforms else ""))
    else:
        folder = source.parent if source.name in COLMAP_FILES else source
        found = find_colmap_model(folder) if folder.is_dir() else None
        if found is None:
            raise InputError(source, None, "not a COLMAP model folder (no cameras/images .bin "
                                           "or .txt here or in sparse/0) nor a .json file")
        model, fmt = found
        images = read_colmap_model(model, fmt, ignore_distortion=args.ignore_distortion,
                                   image_filter=keep)
        kind = f"colmap-{fmt}"
        if model != folder:
            notes.append(f"COLMAP model read from {model}")
    dropped = sorted({(i.camera_model, tuple(i.dropped_distortion.items()))
                      for i in images if i.dropped_distortion})
    for model_name, coefficients in dropped:
        listed = ", ".join(f"{k}={v:.6g}" for k, v in coefficients)
        notes.append(f"{model_name} distortion dropped ({listed}): pinhole part kept")
    return images, kind, notes
