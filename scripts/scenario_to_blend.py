"""Assemble a gs-scenario file as an animated Blender scene, through the add-on.

    python scripts/scenario_to_blend.py SCENARIO.json --out SCENE.blend     # bpy module
    blender -b --python scripts/scenario_to_blend.py -- SCENARIO.json --out SCENE.blend

The scene is built by the add-on's ``blender.scenario_import.build_scene`` (the same
code as File > Import > Tracked Recording): one point proxy per object, named like the
scenario's object, with its role, class and ``instance``, and only the Gaussians of its
asset's ``keep`` list, so the parts of a split instrument come back as parts; the camera
and each object get a keyframe per scenario frame (scene frames 1..F) from the frame's
``world_to_camera`` and ``poses``; an object missing from a frame's ``poses`` gets
``hide_render`` keyed on in that frame. Exporting the saved scene gives back the same
frames, cameras and poses (to float32 precision, Blender's), objects and the settings
listed below; this is how ``make demo`` builds its ``.blend`` and how a lab turns
tracked instrument and camera poses into a scene an artist can edit.

Carried over besides the poses: classes, roles, the camera's near/far (clip start/end)
and the ``output`` settings the add-on has (image format, YOLO task, COCO, masks,
amodal, depth, validation fraction). Not carried, with a note on stderr when set to
anything but the default: ``render.background``, ``render.sh_degree``,
``render.antialiased``, ``output.split_seed``, ``output.min_visible_pixels``,
``output.mask_threshold``.

The scenario is read and checked by ``gs_contract.scenario.load_scenario``, the
backend's own reader, before Blender is touched: a file the backend would refuse is
refused here with the same one-line message (exit 2). Refused besides, with a message
naming the field: an image size or ``K`` that changes between frames, and a ``K``
with skew. Non-square pixels (fx != fy) become the render's pixel aspect.

Named on stderr when they apply: the export names frames after Blender frames
(``frame_0001`` ...), and lists instruments by object name, which sets their instance
ids; a scenario with other frame names or instruments out of name order comes back
renamed or renumbered.

Source paths are stored relative to the .blend (``//...``) when they share a drive, so
the folder can be moved as a whole. The scene renders into ``//dataset/`` by default.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import ModuleType

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # blender --python does not
# gs_contract: the installed extension's bundled copy when there is one, else the checkout's.
sys.path.append(str(Path(__file__).resolve().parents[1]))
from addon_loader import addon_module, addon_package, release_addon, script_argv

from gs_contract.errors import InputError
from gs_contract.scenario import Scenario, load_scenario


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scenario_to_blend.py",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("scenario", type=Path, help="gs-scenario v1 JSON file")
    parser.add_argument("--out", type=Path, required=True, metavar="BLEND",
                        help=".blend file to write")
    parser.add_argument("--output-dir", default="//dataset/", metavar="DIR",
                        help="the scene's dataset folder (default //dataset/, next to the "
                             ".blend)")
    return parser.parse_args(argv)


def relative_sources(blend_path: Path) -> None:
    """Store each proxy's source path relative to the .blend (``//...``) when possible."""
    for obj in bpy.data.objects:
        source = getattr(obj, "gsds", None) and obj.gsds.source_path
        if source and not source.startswith("//"):
            try:
                obj.gsds.source_path = bpy.path.relpath(source, start=str(blend_path.parent))
            except ValueError:  # another drive: keep the absolute path
                pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(script_argv() if argv is None else argv)
    try:
        scenario = load_scenario(args.scenario)  # bad input fails before Blender is touched
    except InputError as exc:
        print(f"scenario_to_blend: {exc.message}", file=sys.stderr)
        return 2
    if bpy.app.binary_path:  # start from an empty scene, keeping enabled extensions
        bpy.ops.wm.read_homefile(use_empty=True)
    else:
        bpy.ops.wm.read_factory_settings(use_empty=True)
    try:
        return build_and_save(addon_package(), scenario, args)
    finally:
        release_addon()


def build_and_save(package: ModuleType, scenario: Scenario,
                   args: argparse.Namespace) -> int:
    """Build the scene from the scenario and save the .blend; the exit code."""
    plan = addon_module(package, "core.scenario_import")
    out = args.out.resolve()
    try:
        addon_module(package, "blender.scenario_import").build_scene(bpy.context, scenario)
    except plan.ScenarioImportError as exc:
        print(f"scenario_to_blend: {exc.located(scenario.path)}", file=sys.stderr)
        return 2
    bpy.context.scene.gsds.output_dir = args.output_dir
    for note in plan.settings_not_carried(scenario):
        print(f"scenario_to_blend: note: {note} is not carried into the .blend (its export "
              "will use the default)", file=sys.stderr)
    for note in plan.export_differences(scenario):
        print(f"scenario_to_blend: note: {note}", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    relative_sources(out)
    partial = out.with_name(out.name + ".partial.blend")
    bpy.ops.wm.save_as_mainfile(filepath=str(partial), check_existing=False, copy=True)
    os.replace(partial, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    code = main()
    if bpy.app.binary_path:  # under `blender -b`, exit with our code, not Blender's
        sys.exit(code)
    raise SystemExit(code)
