"""Read the Blender scene into plain data (:class:`.scenario_builder.GatheredScene`).

Everything here reads Blender; nothing builds JSON. The rules (DESIGN contract 6):

- the objects are those with ``Object.gsds.role`` set, keyed by object name;
- a pose is the object's evaluated world matrix (parents, constraints and drivers
  count), read after ``scene.frame_set(f)`` for each exported frame;
- an object is left out of a frame when its (animatable) ``hide_render`` is on in that
  frame, or when none of its collections is rendered (collection render toggle off or
  excluded from the view layer);
- the camera is ``scene.camera`` in each frame, so camera-binding markers count;
- frames ``ALL``: ``frame_start..frame_end`` by ``frame_step``; ``KEYFRAMES``: the
  sorted union of the keyframes (of the active actions and of the actions in unmuted
  NLA strips, mapped to scene time; rounded to whole frames, clipped to the scene range)
  of the camera (object and lens data), the splat objects, their parents and constraint
  targets (recursively), plus camera-binding markers; with no keyframe at all, the
  current frame alone; ``CURRENT``: the current frame (a preview).
- proxy vertices carry the INT point attribute ``gs_index``; when some rows of the
  source file are missing the object gets a ``keep`` list;
- a proxy's mesh holds the Gaussian centres minus ``gsds.source_origin`` (zero, except
  for a part split off with its origin at its pivot), so its pose (source file ->
  world) is ``matrix_world @ translation(-source_origin)``;
- an instrument's ``gsds.instance`` (stripped; empty = none) is exported as its
  ``instance``; on a background it is ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np

from gs_contract.camera import CameraConversionError, PinholeCamera
from gs_contract.scenario import ROLE_BACKGROUND, ROLE_INSTRUMENT

from ..core.camera_intrinsics import camera_from_blender
from ..core.proxy_pose import world_from_file
from ..core.scenario_builder import GatheredObject, GatheredScene, ScenarioExportError

FramesMode = Literal["ALL", "KEYFRAMES", "CURRENT"]
GS_INDEX_ATTRIBUTE = "gs_index"
ROLE_NAMES = {"BACKGROUND": ROLE_BACKGROUND, "INSTRUMENT": ROLE_INSTRUMENT}


def gather_scene(context: Any, frames_mode: FramesMode = "ALL") -> GatheredScene:
    """Read the scene of ``context`` (needs ``context.scene`` and ``context.view_layer``).

    The current frame is restored afterwards.

    Raises:
        ScenarioExportError: no camera, no object with a role, an instrument without a
            class, an unsaved .blend with relative paths, a missing source file, a proxy
            without ``gs_index``, a non-perspective camera.
    """
    scene = context.scene
    view_layer = context.view_layer
    settings = scene.gsds
    splat_objects = [o for o in scene.objects if o.gsds.role in ROLE_NAMES]
    if not splat_objects:
        raise ScenarioExportError(
            "no object has a role: select a splat object and set its role to Background "
            "or Instrument (3D viewport sidebar (N) > GS Dataset > Splat Object)")
    objects = [gather_object(o) for o in splat_objects]
    if frames_mode == "CURRENT":  # a preview of the frame on screen
        frame_numbers = [scene.frame_current]
    elif frames_mode == "KEYFRAMES":
        frame_numbers = keyframe_numbers(scene, splat_objects)
    else:
        frame_numbers = all_frame_numbers(scene)
    if scene.camera is None and not _marker_cameras(scene):
        raise ScenarioExportError("the scene has no camera: add one and make it the "
                                  "active camera (Scene properties > Camera)")

    rendered = rendered_objects(scene, view_layer)
    cameras, poses, visible, clip = _sample_frames(scene, splat_objects, rendered,
                                                   frame_numbers)
    render = {"near": clip[0], "far": clip[1]}
    return GatheredScene(
        classes=[c.name for c in settings.classes],
        objects=objects,
        frame_numbers=frame_numbers,
        cameras=cameras,
        poses=poses,
        visible=visible,
        render=render,
        output=output_settings(settings),
        meta=_meta(scene, frames_mode),
    )


# ---------------------------------------------------------------------------
# objects


def gather_object(obj: Any) -> GatheredObject:
    """One splat object: role, class, source file and ``keep`` from its proxy mesh."""
    role = ROLE_NAMES[obj.gsds.role]
    props = obj.gsds
    if not props.source_path:
        raise ScenarioExportError(
            f"object {obj.name!r} has role {obj.gsds.role.title()} but no source file: "
            "import splats with File > Import > Gaussian Splat")
    source = blend_abspath(props.source_path, f"source file of {obj.name!r}")
    if not os.path.isfile(source):
        raise ScenarioExportError(f"object {obj.name!r}: source file not found: {source}")
    class_name = props.class_name.strip() if role == ROLE_INSTRUMENT else None
    instance = (props.instance.strip() or None) if role == ROLE_INSTRUMENT else None
    if role == ROLE_INSTRUMENT and not class_name:
        raise ScenarioExportError(
            f"instrument {obj.name!r} has no class name: set one in the 3D viewport's "
            "sidebar (N) > GS Dataset > Splat Object")
    return GatheredObject(name=obj.name, role=role, source_path=source,
                          class_name=class_name, keep=proxy_keep(obj), instance=instance)


def proxy_keep(obj: Any) -> np.ndarray | None:
    """Sorted unique ``gs_index`` values of the proxy, or None when it holds every row
    (every finite row, when the import skipped non-finite ones: the renderer drops those
    itself, so no ``keep`` list is needed).

    Reads the original (not evaluated) mesh with ``foreach_get``; a proxy in Edit Mode is
    synced first, so vertices deleted there count.
    """
    attr = obj.data.attributes.get(GS_INDEX_ATTRIBUTE) if obj.type == "MESH" else None
    if attr is None or attr.domain != "POINT" or attr.data_type != "INT":
        raise ScenarioExportError(
            f"object {obj.name!r} is not a splat proxy: it needs a mesh with the INT point "
            f"attribute {GS_INDEX_ATTRIBUTE!r} (re-import the splat with File > Import > "
            "Gaussian Splat)")
    count = int(obj.gsds.gaussian_count)
    if obj.mode == "EDIT":
        # In Edit Mode the attribute API shows the edit mesh, whose data foreach_get
        # cannot read: sync the mesh and read a temporary copy of it.
        obj.update_from_editmode()
        mesh = obj.data.copy()
        try:
            index = _read_int_attribute(mesh, GS_INDEX_ATTRIBUTE)
        finally:
            import bpy

            bpy.data.meshes.remove(mesh)
    else:
        index = _read_int_attribute(obj.data, GS_INDEX_ATTRIBUTE)
    n = len(index)
    if n == count and np.array_equal(index, np.arange(n, dtype=np.int32)):
        return None
    if n == 0:
        raise ScenarioExportError(f"object {obj.name!r} has no Gaussians left (all proxy "
                                  "vertices deleted): delete the object or undo")
    keep = np.unique(index.astype(np.int64))
    bad = keep[(keep < 0) | (keep >= count)] if count > 0 else keep[keep < 0]
    if bad.size:
        raise ScenarioExportError(
            f"object {obj.name!r}: {GS_INDEX_ATTRIBUTE} holds {int(bad[0])}, outside the "
            f"source file's {count} Gaussians")
    # Proxy vertices only ever stand for finite rows, so holding as many distinct rows
    # as the file has finite ones means holding all of them.
    if obj.gsds.nonfinite_count and keep.size == count - obj.gsds.nonfinite_count:
        return None
    return keep


def _read_int_attribute(mesh: Any, name: str) -> np.ndarray:
    """An INT point attribute as ``[N]`` int32 (one ``foreach_get``)."""
    values = np.empty(len(mesh.vertices), dtype=np.int32)
    if len(values):
        mesh.attributes[name].data.foreach_get("value", values)
    return values


def rendered_objects(scene: Any, view_layer: Any) -> set[str]:
    """Names of the objects in at least one collection that renders in ``view_layer``
    (collection render toggle on, not excluded), following nested collections."""
    names: set[str] = set()

    def walk(layer_collection: Any) -> None:
        coll = layer_collection.collection
        if layer_collection.exclude or coll.hide_render:
            return
        names.update(o.name for o in coll.objects)
        for child in layer_collection.children:
            walk(child)

    walk(view_layer.layer_collection)
    return names


# ---------------------------------------------------------------------------
# frames


def all_frame_numbers(scene: Any) -> list[int]:
    """``frame_start..frame_end`` (inclusive) by ``frame_step``."""
    step = max(1, int(scene.frame_step))
    numbers = list(range(scene.frame_start, scene.frame_end + 1, step))
    if not numbers:
        raise ScenarioExportError(f"the frame range {scene.frame_start}-{scene.frame_end} "
                                  "is empty")
    return numbers


def keyframe_numbers(scene: Any, splat_objects: Iterable[Any]) -> list[int]:
    """The union of keyframes on the camera(s), the splat objects and what drives them."""
    times = [key_times(id_block) for id_block in _animated_sources(scene, splat_objects)]
    frames = set(np.rint(np.concatenate([np.empty(0), *times])).astype(np.int64).tolist())
    frames.update(m.frame for m in scene.timeline_markers if m.camera is not None)
    inside = sorted(f for f in frames if scene.frame_start <= f <= scene.frame_end)
    return inside or [scene.frame_current]


def _animated_sources(scene: Any, splat_objects: Iterable[Any]) -> Iterator[Any]:
    """The ID blocks whose keys count: objects, parents and constraint targets
    (recursively), each camera's object and camera data."""
    roots = list(splat_objects)
    cameras = [scene.camera] if scene.camera is not None else []
    cameras += _marker_cameras(scene)
    roots += cameras
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if obj is None or obj.as_pointer() in seen:
            continue
        seen.add(obj.as_pointer())
        yield obj
        if obj.type == "CAMERA" and obj.data is not None:
            yield obj.data
        stack.append(obj.parent)
        for con in obj.constraints:
            stack.append(getattr(con, "target", None))


def key_times(id_block: Any) -> np.ndarray:
    """Scene times ``[K]`` (frames, float) of an ID's keyframes: its active action's and
    those of the actions in its unmuted NLA strips, mapped through each strip's start,
    scale, repeat and reversal."""
    anim = getattr(id_block, "animation_data", None)
    if anim is None:
        return np.empty(0)
    times = []
    # In NLA tweak mode the active action is the tweaked strip's, which the loop over
    # the strips below maps to scene time already.
    if anim.action is not None and not anim.use_tweak_mode:
        times += [fcurve_key_times(fc) for fc in
                  action_fcurves(anim.action, getattr(anim, "action_slot", None))]
    for track in anim.nla_tracks:
        if track.mute:
            continue
        for strip in track.strips:
            if strip.mute or strip.action is None:
                continue
            local = [fcurve_key_times(fc) for fc in
                     action_fcurves(strip.action, getattr(strip, "action_slot", None))]
            times.append(strip_scene_times(np.concatenate([np.empty(0), *local]), strip))
    return np.concatenate([np.empty(0), *times])


def strip_scene_times(action_times: np.ndarray, strip: Any) -> np.ndarray:
    """Scene times of an NLA strip's action keys ``[K]`` -> ``[M]``: every repeat, keys
    outside the strip's action range dropped, reversed strips mirrored."""
    first, last = float(strip.action_frame_start), float(strip.action_frame_end)
    length = last - first
    inside = action_times[(action_times >= first - 1e-6) & (action_times <= last + 1e-6)]
    offsets = (last - inside) if strip.use_reverse else (inside - first)
    repeats = max(1, int(np.ceil(float(strip.repeat) - 1e-6)))
    local = np.concatenate([offsets + r * length for r in range(repeats)])
    scene_times = float(strip.frame_start) + local * float(strip.scale)
    return scene_times[scene_times <= float(strip.frame_end) + 1e-6]


def action_fcurves(action: Any, slot: Any) -> list[Any]:
    """F-curves of ``action`` for ``slot``: slotted actions (Blender 4.4+, the only kind in
    5.0) through ``action_get_channelbag_for_slot``, else the legacy ``action.fcurves``."""
    try:
        from bpy_extras.anim_utils import action_get_channelbag_for_slot
    except ImportError:  # Blender < 4.4
        return list(action.fcurves)
    bag = action_get_channelbag_for_slot(action, slot)
    if bag is not None:
        return list(bag.fcurves)
    return list(getattr(action, "fcurves", ()))


def fcurve_key_times(fcurve: Any) -> np.ndarray:
    """Times ``[K]`` (frames, float) of an F-curve's keyframes (one ``foreach_get``)."""
    points = fcurve.keyframe_points
    co = np.empty(2 * len(points), dtype=np.float64)
    if len(points):
        points.foreach_get("co", co)
    return co[0::2]


def _marker_cameras(scene: Any) -> list[Any]:
    return [m.camera for m in scene.timeline_markers if m.camera is not None]


def _sample_frames(scene: Any, splat_objects: list[Any], rendered: set[str],
                   frame_numbers: list[int]
                   ) -> tuple[list[PinholeCamera], np.ndarray, np.ndarray,
                              tuple[float, float]]:
    """Step through the frames once; read every matrix and ``hide_render`` in bulk.

    Returns cameras ``[F]``, poses ``[F, O, 4, 4]`` float64, visible ``[F, O]`` bool and
    the (near, far) clip distances of the first frame's camera.
    """
    all_objects = scene.objects
    index = {o.name: i for i, o in enumerate(all_objects)}
    rows = np.array([index[o.name] for o in splat_objects], dtype=np.int64)
    in_render = np.array([o.name in rendered for o in splat_objects], dtype=bool)
    n_all, n_frames = len(all_objects), len(frame_numbers)
    matrices = np.empty(n_all * 16, dtype=np.float32)
    hidden = np.empty(n_all, dtype=bool)
    poses = np.empty((n_frames, len(splat_objects), 4, 4), dtype=np.float64)
    visible = np.empty((n_frames, len(splat_objects)), dtype=bool)
    cameras: list[PinholeCamera] = []
    clip = (0.01, 1e10)
    current = scene.frame_current
    try:
        for f, number in enumerate(frame_numbers):
            scene.frame_set(number)
            camera = scene.camera
            if camera is None:
                raise ScenarioExportError(f"no active camera at frame {number}")
            try:
                cameras.append(camera_from_blender(camera, scene.render))
            except CameraConversionError as exc:
                raise ScenarioExportError(f"frame {number}: {exc}") from None
            if f == 0:
                clip = (float(camera.data.clip_start), float(camera.data.clip_end))
            all_objects.foreach_get("matrix_world", matrices)
            all_objects.foreach_get("hide_render", hidden)
            # Blender stores matrices column-major: transpose to row-major.
            poses[f] = matrices.reshape(n_all, 4, 4)[rows].transpose(0, 2, 1)
            visible[f] = in_render & ~hidden[rows]
    finally:
        scene.frame_set(current)
    origins = np.array([tuple(o.gsds.source_origin) for o in splat_objects],
                       dtype=np.float64).reshape(-1, 3)
    poses = world_from_file(poses, origins[None])
    poses[~visible] = np.eye(4)
    return cameras, poses, visible, clip


# ---------------------------------------------------------------------------
# settings and paths


def output_settings(settings: Any) -> dict[str, Any]:
    """The scenario's ``output`` block from ``Scene.gsds``."""
    return {
        "image_format": settings.image_format.lower(),
        "yolo_task": settings.yolo_task.lower(),
        "coco": bool(settings.coco),
        "masks": bool(settings.masks),
        "amodal": bool(settings.amodal),
        "depth": bool(settings.depth),
        "val_fraction": round(float(settings.val_fraction), 6),
    }


def blend_abspath(path: str, what: str) -> str:
    """Absolute, normalised path; Blender's ``//`` prefix is relative to the saved .blend.

    Raises ScenarioExportError when ``path`` is ``//``-relative and the .blend is unsaved.
    """
    import bpy

    if path.startswith("//") and not bpy.data.filepath:
        raise ScenarioExportError(
            f"the {what} ({path!r}) is relative to the .blend file, which is not saved yet: "
            "save the .blend or use an absolute path")
    return os.path.normpath(os.path.abspath(bpy.path.abspath(path)))


def _meta(scene: Any, frames_mode: str) -> dict[str, Any]:
    import bpy

    return {
        "generator": "gs_dataset_studio (Blender " + bpy.app.version_string + ")",
        "blend_file": bpy.data.filepath or None,
        "scene": scene.name,
        "frames_mode": frames_mode,
    }
