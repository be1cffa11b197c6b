"""A parsed scenario -> proxies, a camera and keyframes in the current scene.

The one copy of the keyframing code: ``scripts/scenario_to_blend.py`` (a scenario file
into a new .blend) and ``gsds.import_recording`` (a tracked recording, replayed by
``gs_contract.recording``) both call :func:`build_scene`.

What it builds (frame mapping: scenario frame i, 0-based, at scene frame
``first_frame + i``):

- one proxy per scenario object, named like the object (Blender adds a suffix when the
  name is taken), with its role, class and ``instance``; a proxy holds only its asset's
  ``keep`` rows, so the parts of a split instrument come back as parts; the scenario's
  classes join the scene's class list, in order;
- a camera (the scene camera) with the scenario's fixed image size and ``K``
  (:func:`blender_addon.core.scenario_import.fixed_camera`), clip start/end from
  ``render.near``/``render.far``;
- keys of location, quaternion rotation and uniform scale per frame for the camera and
  every object, from ``world_to_camera`` and the poses; ``hide_render`` keyed on in the
  frames where an object has no pose;
- the scene's frame range, resolution, optional frame rate and the ``Scene.gsds`` output
  settings.

Every file is read and every rule checked before the scene is touched; if building
still fails, everything created is removed again (:func:`rollback_on_failure`), so a
failed import leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.types import Collection, Context, Object, Scene
from mathutils import Matrix

from gs_contract.camera import camera_matrix_world_from
from gs_contract.errors import InputError
from gs_contract.pose import Similarity, similarity_from_matrix
from gs_contract.scenario import ROLE_INSTRUMENT, Scenario
from gs_contract.splats import SplatData, read_splat_file

from ..core.camera_intrinsics import BlenderCameraSettings
from ..core.scenario_import import ScenarioImportError, fixed_camera, output_settings
from . import proxy_mesh
from .operators_parts import delete_vertices
from .properties import ensure_class
from .scene_gather import GS_INDEX_ATTRIBUTE, ROLE_NAMES

# bpy.data collections whose new members a failed build removes, in removal order.
CREATED_DATA = ("objects", "meshes", "cameras", "actions", "materials", "node_groups")
BLENDER_ROLES = {name: key for key, name in ROLE_NAMES.items()}  # scenario -> Object.gsds


@dataclass(frozen=True)
class ImportedScene:
    """What :func:`build_scene` made.

    Attributes:
        camera: the camera object (now the scene camera).
        objects: proxy objects by scenario object name (their Blender names may carry a
            suffix when the name was taken).
        first_frame, last_frame: the scene frames keyed (one per scenario frame).
    """

    camera: Object
    objects: dict[str, Object]
    first_frame: int
    last_frame: int

    def renamed(self) -> dict[str, str]:
        """Scenario name -> Blender name, for the objects whose name was taken."""
        return {name: obj.name for name, obj in self.objects.items() if obj.name != name}


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


def read_assets(scenario: Scenario) -> dict[Path, SplatData]:
    """Read every asset file the objects use, once per file (DC colour only: what a proxy
    shows), before anything is built.

    Raises:
        ScenarioImportError: the reader's message (naming the file) and the asset, or a
            file without Gaussians.
    """
    splats: dict[Path, SplatData] = {}
    for spec in scenario.objects.values():
        path = scenario.assets[spec.asset].ply  # absolute, checked by the reader
        if path in splats:
            continue
        try:
            splat = read_splat_file(path, dc_only=True)
        except InputError as exc:
            raise ScenarioImportError(f"{exc.message} (asset {spec.asset!r})",
                                      names_file=True) from None
        if splat.count == 0:
            raise ScenarioImportError(f"{path}: the file holds no Gaussians (asset "
                                      f"{spec.asset!r})", names_file=True)
        splats[path] = splat
    return splats


def proxy_index(mesh: Any) -> np.ndarray:
    """The proxy's ``gs_index`` values ``[N]`` (the file row of each vertex)."""
    index = np.empty(len(mesh.vertices), dtype=np.int32)
    mesh.attributes[GS_INDEX_ATTRIBUTE].data.foreach_get("value", index)
    return index


def import_objects(scene: Scene, scenario: Scenario, splats: dict[Path, SplatData],
                   collection: Collection) -> dict[str, Object]:
    """One proxy per scenario object, linked into ``collection``; Blender objects by
    scenario name. A proxy keeps only the Gaussians of its asset's ``keep`` list; an
    instrument gets its ``instance`` when it has one."""
    for name in scenario.classes:
        ensure_class(scene, name)
    objects = {}
    for name, spec in scenario.objects.items():
        asset = scenario.assets[spec.asset]
        obj, _ = proxy_mesh.create_proxy_object(splats[asset.ply], name, collection)
        obj.gsds.role = BLENDER_ROLES[spec.role]
        obj.gsds.class_name = spec.class_name or ""
        instance = scenario.raw["objects"][name].get("instance")
        if spec.role == ROLE_INSTRUMENT and instance:
            obj.gsds.instance = instance
        if asset.keep is not None:
            delete_vertices(obj.data, ~np.isin(proxy_index(obj.data), asset.keep))
        objects[name] = obj
    return objects


def create_camera(settings: BlenderCameraSettings, near: float, far: float,
                  collection: Collection) -> Object:
    """A camera object with the lens, sensor and shifts of ``settings``."""
    data = bpy.data.cameras.new("Camera")
    data.sensor_fit = 'HORIZONTAL'
    data.sensor_width = settings.sensor_width
    data.lens = settings.lens
    data.shift_x, data.shift_y = settings.shift_x, settings.shift_y
    data.clip_start, data.clip_end = near, far
    camera = bpy.data.objects.new("Camera", data)
    collection.objects.link(camera)
    return camera


def key_transforms(obj: Object, poses: dict[int, Similarity]) -> None:
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


def key_presence(obj: Object, present: list[bool], first_frame: int = 1) -> None:
    """Key ``hide_render`` per frame (``present[i]`` at ``first_frame + i``) when the
    object is missing from some."""
    if all(present):
        return
    for frame, shown in enumerate(present, start=first_frame):
        obj.hide_render = not shown
        obj.keyframe_insert("hide_render", frame=frame)


def key_scenario(camera: Object, objects: dict[str, Object], scenario: Scenario,
                 first_frame: int) -> None:
    """Key the camera and every object at scene frames ``first_frame ...``."""
    frames = scenario.frames
    key_transforms(camera, {
        first_frame + i: similarity_from_matrix(
            camera_matrix_world_from(f.camera.world_to_camera),
            source=scenario.path, field=f"frames[{f.index}].camera.world_to_camera")
        for i, f in enumerate(frames)})
    for name, obj in objects.items():
        # The poses as the reader checked and split them (no second decomposition).
        poses = {first_frame + i: f.similarities[name] for i, f in enumerate(frames)
                 if name in f.similarities}
        if poses:
            # Frames without a pose hold the nearest keyed pose; they are hidden anyway.
            key_transforms(obj, poses)
        key_presence(obj, [name in f.poses for f in frames], first_frame)


def apply_scene_settings(scene: Scene, scenario: Scenario, camera: Object,
                         settings: BlenderCameraSettings, first_frame: int,
                         rate: tuple[int, float] | None) -> None:
    """Scene camera, resolution, frame range, frame rate and ``Scene.gsds`` output."""
    render = scene.render
    scene.camera = camera
    render.resolution_x, render.resolution_y = settings.width, settings.height
    render.resolution_percentage = 100
    render.pixel_aspect_x, render.pixel_aspect_y = (settings.pixel_aspect_x,
                                                    settings.pixel_aspect_y)
    if rate is not None:
        render.fps, render.fps_base = rate
    scene.frame_start, scene.frame_end = first_frame, first_frame + len(scenario.frames) - 1
    for key, value in output_settings(scenario.output).items():
        setattr(scene.gsds, key, value)


@contextmanager
def rollback_on_failure(scene: Scene) -> Iterator[None]:
    """On an exception in the block, remove the data blocks it created (objects, meshes,
    cameras, actions, materials, node groups) and the classes it added, and re-raise."""
    before = {kind: {b.as_pointer() for b in getattr(bpy.data, kind)} for kind in CREATED_DATA}
    class_count = len(scene.gsds.classes)
    try:
        yield
    except BaseException:
        for kind in CREATED_DATA:
            data = getattr(bpy.data, kind)
            for block in [b for b in data if b.as_pointer() not in before[kind]]:
                data.remove(block)
        while len(scene.gsds.classes) > class_count:
            scene.gsds.classes.remove(len(scene.gsds.classes) - 1)
        raise


def build_scene(context: Context, scenario: Scenario, *, first_frame: int = 1,
                rate: tuple[int, float] | None = None, k_field: str | None = None,
                ) -> ImportedScene:
    """Build ``scenario`` into the scene of ``context`` (module docstring).

    Args:
        context: needs ``scene`` and ``collection`` (where the new objects go; the
            scene's master collection when None).
        scenario: the parsed scenario (asset paths absolute).
        first_frame: the scene frame of the scenario's first frame.
        rate: ``(render.fps, render.fps_base)`` to set, or None to leave the frame rate.
        k_field: the field named when ``K`` cannot be a Blender camera.

    Raises:
        ScenarioImportError: before the scene is touched, naming the field.
    """
    scene = context.scene
    camera_settings = fixed_camera(scenario, k_field)
    splats = read_assets(scenario)
    collection = context.collection or scene.collection
    with rollback_on_failure(scene):
        objects = import_objects(scene, scenario, splats, collection)
        camera = create_camera(camera_settings, scenario.render.near, scenario.render.far,
                               collection)
        key_scenario(camera, objects, scenario, first_frame)
    apply_scene_settings(scene, scenario, camera, camera_settings, first_frame, rate)
    scene.frame_set(first_frame)
    return ImportedScene(camera, objects, first_frame, first_frame + len(scenario.frames) - 1)
