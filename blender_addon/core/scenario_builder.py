"""Plain scene data -> ``gs-scenario`` v1 dict (DESIGN contract 1), and writing it.

Pure: no bpy. :mod:`.scene_gather` reads Blender into a :class:`GatheredScene`;
:func:`build_scenario` turns that into the JSON-ready dict; :func:`write_scenario`
writes it atomically. Tests build ``GatheredScene`` by hand.

Decisions (documented for users in the README):

- ``classes``: the scene's class list in order (blank and repeated names dropped),
  then any instrument class name not in it, in order of first appearance (DESIGN
  contract 6: "a new name joins them").
- ``objects`` are keyed by Blender object name, backgrounds first, then instruments,
  each group sorted by name; instrument instance ids therefore follow name order (the
  parts of one instance at the position of their first part). An instrument's
  ``instance`` is written only when it is set.
- One asset per distinct (source file, ``keep`` set): objects sharing a file and the
  same kept Gaussians share the asset. Asset names come from the file stem.
- ``ply`` paths are relative to the scenario's folder when possible (same drive),
  else absolute, with forward slashes.
- A scene with instruments and no background is allowed (the backend renders it).
- The built dict is checked by the backend's own parser
  (:func:`gs_contract.scenario.parse_scenario`) before anyone writes it: a pose that is
  not a similarity, a non-finite number or any other broken rule is refused here with
  the object and the Blender frame, never written. Names, defaults and rules come from
  :mod:`gs_contract.scenario`; none is repeated here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.atomic import write_text_atomic
from gs_contract.camera import PinholeCamera
from gs_contract.errors import InputError, PoseError
from gs_contract.files import portable_path
from gs_contract.scenario import (
    ROLE_BACKGROUND,
    ROLE_INSTRUMENT,
    SCENARIO_FORMAT,
    SCENARIO_VERSION,
    Role,
    blender_frame_name,
    parse_scenario,
)

# The name the built scenario is checked under when only its folder is known.
CHECK_NAME = "scenario.json"


class ScenarioExportError(Exception):
    """The scene cannot be exported; the message names the object, file or field."""


@dataclass(frozen=True)
class GatheredObject:
    """A splat object as the scenario needs it.

    ``source_path``: absolute path of the Gaussian file. ``keep``: sorted unique file
    rows still present on the proxy (``None`` = all of them). ``instance``: the name of
    the instance this instrument is a part of (``None``: its own).
    """

    name: str
    role: Role
    source_path: str
    class_name: str | None = None
    keep: np.ndarray | None = field(default=None, compare=False)
    instance: str | None = None


@dataclass
class GatheredScene:
    """Everything read from Blender, as plain data.

    Shapes: F frames, O objects (in ``objects`` order).

    - ``frame_numbers``: ``[F]`` Blender frame numbers (frame names:
      :func:`gs_contract.scenario.blender_frame_name`).
    - ``cameras``: ``[F]`` pinhole cameras.
    - ``poses``: ``[F, O, 4, 4]`` float64, each object's PLY -> world matrix.
    - ``visible``: ``[F, O]`` bool; a hidden object is left out of that frame's poses.
    """

    classes: list[str]
    objects: list[GatheredObject]
    frame_numbers: list[int]
    cameras: list[PinholeCamera]
    poses: np.ndarray
    visible: np.ndarray
    render: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def build_scenario(scene: GatheredScene, scenario_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Build the scenario dict. ``scenario_dir``: folder the file will be written to.

    Raises:
        ScenarioExportError: no objects, an instrument without a class, no frames, a
            pose the backend would refuse (non-uniform scale, mirror; naming the object
            and the Blender frame), or any other rule of the scenario parser.
    """
    objects = scene.objects
    if not objects:
        raise ScenarioExportError(
            "no object has a role: set Background or Instrument on at least one splat object")
    n_frames = len(scene.frame_numbers)
    if n_frames == 0:
        raise ScenarioExportError("no frames to export")
    if len(scene.cameras) != n_frames or scene.poses.shape[:2] != (n_frames, len(objects)) \
            or scene.visible.shape != (n_frames, len(objects)):
        raise ValueError("GatheredScene arrays do not match its frames and objects")

    classes = _classes(scene.classes, objects)
    assets, asset_of = _assets(objects, Path(scenario_dir))
    order = sorted(range(len(objects)),
                   key=lambda i: (objects[i].role != ROLE_BACKGROUND, objects[i].name))
    obj_block: dict[str, Any] = {}
    for i in order:
        obj = objects[i]
        entry: dict[str, Any] = {"asset": asset_of[obj.name], "role": obj.role}
        if obj.role == ROLE_INSTRUMENT:
            entry["class"] = obj.class_name.strip()  # type: ignore[union-attr]
            if obj.instance:
                entry["instance"] = obj.instance
        obj_block[obj.name] = entry

    poses = round_significant(scene.poses).tolist()  # one conversion for all frames: fast
    visible = scene.visible.tolist()
    names = [objects[i].name for i in order]
    frames = []
    for f, number in enumerate(scene.frame_numbers):
        frame_poses = {name: poses[f][i]
                       for name, i in zip(names, order, strict=True) if visible[f][i]}
        frames.append({"name": blender_frame_name(number),
                       "camera": _camera_json(scene.cameras[f]), "poses": frame_poses})

    scenario: dict[str, Any] = {
        "format": SCENARIO_FORMAT,
        "version": SCENARIO_VERSION,
        "classes": classes,
        "assets": assets,
        "objects": obj_block,
    }
    if scene.render:
        scenario["render"] = dict(scene.render)
    if scene.output:
        scenario["output"] = dict(scene.output)
    scenario["frames"] = frames
    if scene.meta:
        scenario["meta"] = dict(scene.meta)
    check_scenario(scenario, Path(scenario_dir) / CHECK_NAME, scene.frame_numbers)
    return scenario


def check_scenario(scenario: dict[str, Any], path: str | os.PathLike[str],
                   frame_numbers: Sequence[int] | None = None) -> None:
    """Check ``scenario`` with the backend's own parser, as the file ``path``.

    ``frame_numbers``: the Blender frame of each scenario frame, to name it in messages.

    Raises:
        ScenarioExportError: the parser's refusal, in the add-on's words.
    """
    try:
        parse_scenario(scenario, path)
    except PoseError as exc:
        raise ScenarioExportError(_pose_message(exc, scenario, frame_numbers)) from None
    except InputError as exc:
        where = f"{exc.field}: " if exc.field else ""
        raise ScenarioExportError(f"the scenario would be invalid: {where}{exc.problem}") \
            from None


def _pose_message(exc: PoseError, scenario: dict[str, Any],
                  frame_numbers: Sequence[int] | None) -> str:
    """"object 'tool' at frame 2: <problem>: splats can only be moved ..." from the
    parser's ``frames[i].poses.<object>`` error."""
    match = re.fullmatch(r"frames\[(\d+)\]\.poses\.(.+)", exc.field or "")
    if match is None:  # not a frame's pose: say it as the parser does
        return f"the scenario would be invalid: {exc.field}: {exc.problem}"
    index, name = int(match[1]), match[2]
    frame = scenario["frames"][index]["name"]
    number = frame_numbers[index] if frame_numbers is not None else frame
    problem = exc.problem.removesuffix(f" (frame {frame!r}, object {name!r})")
    if exc.anisotropy is None:  # not a question of shape (e.g. a non-finite entry)
        return f"object {name!r} at frame {number}: {problem}"
    return (f"object {name!r} at frame {number}: {problem}: splats can only be moved, "
            "rotated and scaled uniformly (check its scale and its parents' scale)")


def round_significant(values: np.ndarray, digits: int = 9) -> np.ndarray:
    """Round to ``digits`` significant digits (9 keeps every float32 value exactly), so
    that the file shows ``0.1`` rather than ``0.10000000149011612``."""
    out = np.array(values, dtype=np.float64)
    nonzero = np.isfinite(out) & (out != 0)
    magnitude = np.floor(np.log10(np.abs(out[nonzero])))
    scale = 10.0 ** (digits - 1 - magnitude)
    out[nonzero] = np.round(out[nonzero] * scale) / scale
    return out


def _camera_json(camera: PinholeCamera) -> dict[str, Any]:
    return {"width": camera.width, "height": camera.height,
            "K": round_significant(camera.K, 12).tolist(),
            "world_to_camera": round_significant(camera.world_to_camera).tolist()}


def _classes(scene_classes: Sequence[str], objects: Sequence[GatheredObject]) -> list[str]:
    classes: list[str] = []
    for name in scene_classes:
        name = name.strip()
        if name and name not in classes:
            classes.append(name)
    for obj in objects:
        if obj.role != ROLE_INSTRUMENT:
            continue
        name = (obj.class_name or "").strip()
        if not name:
            raise ScenarioExportError(
                f"instrument {obj.name!r} has no class name: set one in the 3D viewport's "
                "sidebar (N) > GS Dataset > Splat Object")
        if name not in classes:
            classes.append(name)
    return classes


def _assets(objects: Sequence[GatheredObject],
            scenario_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """One asset per distinct (file, keep). Returns (assets block, object -> asset name)."""
    assets: dict[str, Any] = {}
    keys: list[tuple[str, np.ndarray | None, str]] = []  # (normalised path, keep, name)
    asset_of: dict[str, str] = {}
    for obj in sorted(objects, key=lambda o: o.name):
        path = os.path.normcase(os.path.abspath(obj.source_path))
        for key_path, key_keep, name in keys:
            if key_path == path and _same_keep(key_keep, obj.keep):
                asset_of[obj.name] = name
                break
        else:
            name = _unique_name(_asset_stem(obj.source_path), assets)
            entry: dict[str, Any] = {"ply": portable_path(obj.source_path, scenario_dir)}
            if obj.keep is not None:
                entry["keep"] = np.asarray(obj.keep, dtype=np.int64).tolist()
            assets[name] = entry
            keys.append((path, obj.keep, name))
            asset_of[obj.name] = name
    return assets, asset_of


def _same_keep(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


def _asset_stem(path: str) -> str:
    stem = Path(path).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "asset"


def _unique_name(stem: str, taken: dict[str, Any]) -> str:
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}_{n}"
    return name


# ---------------------------------------------------------------------------
# writing


def scenario_to_json(scenario: dict[str, Any]) -> str:
    """Readable JSON: nested blocks indented, each frame and each number list on one line."""
    return _format(scenario, 0) + "\n"


def _format(value: Any, depth: int) -> str:
    if isinstance(value, dict) and value:
        if depth >= 2 and _is_compact(value):
            return json.dumps(value, separators=(", ", ": "))
        pad = " " * (depth + 1)
        items = [f"{pad}{json.dumps(k)}: {_format(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    if isinstance(value, list) and value and any(isinstance(v, dict) for v in value):
        pad = " " * (depth + 1)
        items = [pad + json.dumps(v, separators=(", ", ": ")) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * depth + "]"
    return json.dumps(value, separators=(", ", ": "))


def _is_compact(value: dict[str, Any]) -> bool:
    return not any(isinstance(v, dict) for v in value.values())


def write_scenario(path: str | os.PathLike[str], scenario: dict[str, Any]) -> Path:
    """Write ``scenario`` to ``path`` atomically (temp file + rename). Returns the path."""
    write_text_atomic(path, scenario_to_json(scenario))
    return Path(path)
