"""Assemble a gs-scenario file as an animated Blender scene, through the add-on.

    python scripts/scenario_to_blend.py SCENARIO.json --out SCENE.blend     # bpy module
    blender -b --python scripts/scenario_to_blend.py -- SCENARIO.json --out SCENE.blend

Every asset an object uses is imported with ``gsds.import_ply`` (one point proxy per
object, named like the scenario's object, with its role, class and ``instance``, and
only the Gaussians of its asset's ``keep`` list, so the parts of a split instrument
come back as parts); the camera and
each object get a keyframe per scenario frame (scene frames 1..F) from the frame's
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
without square pixels (fx = fy).

Named on stderr when they apply: the export names frames after Blender frames
(``frame_0001`` ...), and lists instruments by object name, which sets their instance
ids; a scenario with other frame names or instruments out of name order comes back
renamed or renumbered.

Source paths are stored relative to the .blend (``//...``) when they share a drive, so
the folder can be moved as a whole. The scene renders into ``//dataset/`` by default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import bpy
import numpy as np
from mathutils import Matrix

sys.path.insert(0, str(Path(__file__).resolve().parent))  # blender --python does not
# gs_contract: the installed extension's bundled copy when there is one, else the checkout's.
sys.path.append(str(Path(__file__).resolve().parents[1]))
from addon_loader import addon_module, addon_package, release_addon, script_argv

from gs_contract.errors import InputError
from gs_contract.pose import Similarity, similarity_from_matrix
from gs_contract.scenario import (
    ROLE_INSTRUMENT,
    OutputSettings,
    RenderSettings,
    Scenario,
    blender_frame_name,
    load_scenario,
)

# Scenario settings the add-on has no place for (their defaults: gs_contract.scenario).
NOT_CARRIED = {"render": ("background", "sh_degree", "antialiased"),
               "output": ("split_seed", "min_visible_pixels", "mask_threshold")}
BLENDER_IMAGE_FORMATS = {"png": 'PNG', "jpg": 'JPG'}  # scenario -> Scene.gsds.image_format


class ScenarioError(Exception):
    """A scenario this script cannot turn into a scene; the message names the field."""


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


def quaternion_track(rotations: list[np.ndarray]) -> list[np.ndarray]:
    """Unit quaternions (wxyz) of 3x3 rotations, signs chosen so neighbours agree
    (keeps Blender's per-channel interpolation between keys on the short arc)."""
    out: list[np.ndarray] = []
    for rotation in rotations:
        q = np.array(Matrix(rotation.tolist()).to_quaternion(), dtype=np.float64)
        if out and float(np.dot(out[-1], q)) < 0.0:
            q = -q
        out.append(q)
    return out


# ---------------------------------------------------------------------------
# building the scene


def import_objects(package: ModuleType, scenario: Scenario,
                   roles: dict[str, str]) -> dict[str, Any]:
    """Import one proxy per scenario object; return Blender objects by scenario name.
    ``roles``: scenario role -> ``Object.gsds.role``. A proxy keeps only the Gaussians
    of its asset's ``keep`` list; an instrument gets its ``instance`` when it has one."""
    delete_vertices = addon_module(package, "blender.operators_parts").delete_vertices
    for name in scenario.classes:
        bpy.ops.gsds.class_add(name=name)
    objects = {}
    for name, spec in scenario.objects.items():
        path = scenario.assets[spec.asset].ply  # absolute, checked by the reader
        result = bpy.ops.gsds.import_ply(filepath=str(path), role=roles[spec.role],
                                         class_name=spec.class_name or "")
        if result != {'FINISHED'}:
            raise ScenarioError(f"assets.{spec.asset}.ply: could not import {path}")
        obj = bpy.context.view_layer.objects.active
        obj.name = name
        obj.data.name = name
        instance = scenario.raw["objects"][name].get("instance")
        if spec.role == ROLE_INSTRUMENT and instance:
            obj.gsds.instance = instance
        keep = scenario.assets[spec.asset].keep
        if keep is not None:
            delete_vertices(obj.data, ~np.isin(proxy_index(obj.data), keep))
        objects[name] = obj
    return objects


def proxy_index(mesh: Any) -> np.ndarray:
    """The proxy's ``gs_index`` values ``[N]`` (the file row of each vertex)."""
    index = np.empty(len(mesh.vertices), dtype=np.int32)
    mesh.attributes["gs_index"].data.foreach_get("value", index)
    return index


def setup_camera(scenario: Scenario, intrinsics: ModuleType) -> Any:
    """A camera object matching the scenario's (constant) image size and intrinsics;
    ``intrinsics``: ``gs_contract.camera`` (the conversions both ways)."""
    first = scenario.frames[0].camera
    width, height, K = first.width, first.height, first.K
    for i, frame in enumerate(scenario.frames):
        camera = frame.camera
        if (camera.width, camera.height) != (width, height) or not np.allclose(
                camera.K, K, rtol=0, atol=1e-9):
            raise ScenarioError(f"frames[{i}].camera: the image size and K must be the same "
                                "in every frame")
    scene = bpy.context.scene
    render = scene.render
    render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.pixel_aspect_x = render.pixel_aspect_y = 1.0
    sensor_width = 36.0  # mm, Blender's default
    try:
        lens = intrinsics.lens_from_intrinsics(K, width, height, sensor_width)
    except intrinsics.CameraConversionError as exc:
        raise ScenarioError(f"frames[0].camera.K: {exc}") from None
    data = bpy.data.cameras.new("Camera")
    data.sensor_fit = 'HORIZONTAL'
    data.sensor_width = sensor_width
    for key, value in lens.items():
        setattr(data, key, value)
    data.clip_start = scenario.render.near
    data.clip_end = scenario.render.far
    camera = bpy.data.objects.new("Camera", data)
    scene.collection.objects.link(camera)
    scene.camera = camera
    return camera


def apply_output_settings(settings: Any, output: OutputSettings) -> None:
    """Copy the scenario's ``output`` settings (defaults included) into ``Scene.gsds``."""
    settings.image_format = BLENDER_IMAGE_FORMATS[output.image_format]
    settings.yolo_task = output.yolo_task.upper()
    for key in ("coco", "masks", "amodal", "depth", "val_fraction"):
        setattr(settings, key, getattr(output, key))


def settings_not_carried(scenario: Scenario) -> list[str]:
    """``field = value`` (as written in the file) for each setting the .blend cannot hold
    that differs from its default."""
    defaults = {"render": RenderSettings(), "output": OutputSettings()}
    parsed = {"render": scenario.render, "output": scenario.output}
    notes = []
    for block, keys in NOT_CARRIED.items():
        for key in keys:
            if getattr(parsed[block], key) != getattr(defaults[block], key):
                value = scenario.raw[block][key]
                notes.append(f"{block}.{key} = {json.dumps(value)}")
    return notes


def export_differences(scenario: Scenario) -> list[str]:
    """How the .blend's export will differ in naming and order from ``scenario``:
    frames are named after Blender frames (``frame_0001`` ...), and instruments are
    listed by object name, which sets their instance ids (mask values)."""
    notes = []
    names = [f.name for f in scenario.frames]
    blender_names = [blender_frame_name(i) for i in range(1, len(names) + 1)]
    if names != blender_names:
        notes.append(f"frames are exported as {blender_names[0]} ... {blender_names[-1]}, "
                     f"not {names[0]} ... {names[-1]}")
    instruments = [o.name for o in scenario.instruments]
    if instruments != sorted(instruments):
        notes.append(f"instruments are exported in name order {sorted(instruments)}, not "
                     f"{instruments}: their instance ids (mask values) change")
    return notes


def key_transforms(obj: Any, poses: dict[int, Similarity]) -> None:
    """Key location, quaternion rotation and uniform scale of ``obj`` at each frame."""
    frames = sorted(poses)
    obj.rotation_mode = 'QUATERNION'
    quats = quaternion_track([poses[f].rotation for f in frames])
    for frame, quat in zip(frames, quats, strict=True):
        obj.location = poses[frame].translation.tolist()
        obj.rotation_quaternion = quat.tolist()
        obj.scale = (poses[frame].scale,) * 3
        for path in ("location", "rotation_quaternion", "scale"):
            obj.keyframe_insert(path, frame=frame)


def key_presence(obj: Any, present: list[bool]) -> None:
    """Key ``hide_render`` per frame (1-based) when the object is missing from some."""
    if all(present):
        return
    for frame, shown in enumerate(present, start=1):
        obj.hide_render = not shown
        obj.keyframe_insert("hide_render", frame=frame)


def build_scene(package: ModuleType, scenario: Scenario, output_dir: str) -> None:
    """Fill the current (empty) scene from ``scenario`` with the add-on ``package``."""
    frames = scenario.frames
    scene = bpy.context.scene
    roles = {name: key for key, name in
             addon_module(package, "blender.scene_gather").ROLE_NAMES.items()}
    objects = import_objects(package, scenario, roles)
    import gs_contract.camera as intrinsics  # importable once the add-on is
    camera = setup_camera(scenario, intrinsics)
    scene.frame_start, scene.frame_end = 1, len(frames)
    scene.gsds.output_dir = output_dir
    apply_output_settings(scene.gsds, scenario.output)

    key_transforms(camera, {
        i: similarity_from_matrix(
            intrinsics.camera_matrix_world_from(f.camera.world_to_camera),
            source=scenario.path, field=f"frames[{f.index}].camera.world_to_camera")
        for i, f in enumerate(frames, start=1)})
    for name, obj in objects.items():
        # The poses as the reader checked and split them (no second decomposition).
        poses = {i: f.similarities[name] for i, f in enumerate(frames, start=1)
                 if name in f.similarities}
        if poses:
            # Frames without a pose hold the nearest keyed pose; they are hidden anyway.
            key_transforms(obj, poses)
        key_presence(obj, [name in f.poses for f in frames])
    scene.frame_set(1)


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
    out = args.out.resolve()
    try:
        build_scene(package, scenario, args.output_dir)
    except ScenarioError as exc:
        print(f"scenario_to_blend: {exc}", file=sys.stderr)
        return 2
    for note in settings_not_carried(scenario):
        print(f"scenario_to_blend: note: {note} is not carried into the .blend (its export "
              "will use the default)", file=sys.stderr)
    for note in export_differences(scenario):
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
