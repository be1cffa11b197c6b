"""Reading and validating ``gs-scenario`` v1 files (DESIGN contract 1).

Everything the renderer needs is checked here, up front, so that a bad file fails in
a fraction of a second with one message that names the file and the JSON path of the
offending field (``frames[3].camera.K``), instead of failing mid-render. Poses are
checked and split into similarities here, once (:mod:`gs_contract.pose`).

Numbers are taken strictly: a matrix entry, a size or a setting must be a JSON number
(``"1"`` and ``true`` are refused), finite and within float range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.camera import ROTATION_TOLERANCE, PinholeCamera, rotation_defect
from gs_contract.errors import InputError, PoseError
from gs_contract.files import require_regular_file
from gs_contract.jsonfile import (
    JsonValidator,
    describe_value,
    read_json_file,
    short_repr,
)
from gs_contract.pose import Similarity, similarity_from_matrix
from gs_contract.scenario.model import AssetSpec, FrameSpec, ObjectSpec, Scenario
from gs_contract.scenario.schema import (
    ASSET_KEYS,
    CAMERA_KEYS,
    FRAME_KEYS,
    FRAME_NAME_RULE,
    IMAGE_FORMAT_ALIASES,
    IMAGE_FORMATS,
    MAX_IMAGE_SIDE,
    OBJECT_KEYS,
    OUTPUT_KEYS,
    RENDER_KEYS,
    ROLE_INSTRUMENT,
    ROLES,
    SCENARIO_FORMAT,
    SCENARIO_VERSION,
    TOP_LEVEL_KEYS,
    YOLO_TASKS,
    OutputSettings,
    RenderSettings,
    is_valid_frame_name,
)

# ``meta`` is free-form; deeper nesting than this is refused so that copying it into
# the manifest can never exceed Python's recursion limit.
MAX_META_DEPTH = 64
MAX_INSTRUMENTS = 65535  # instance ids are uint16 mask values


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file.

    Raises:
        InputError: one line naming the file and the field: the path is not a regular
            file, the text is not JSON (or nested too deeply, or holds an integer too
            long to read), or any field breaks a rule of :func:`parse_scenario`.
    """
    path = Path(path)
    return parse_scenario(read_json_file(path), path)


def parse_scenario(raw: Any, path: str | Path) -> Scenario:
    """Validate an already-decoded scenario dict.

    ``path``: where the scenario file is (or will be written): relative asset paths
    resolve against its folder, and messages name it. Asset files must exist (as
    regular files) but are not read; ``keep`` files are read.

    Raises:
        InputError: naming ``path`` and the JSON path of the first bad field;
            :class:`~gs_contract.errors.PoseError` for a pose that is not a similarity
            (with the frame, the object and the anisotropy).
    """
    path = Path(path).resolve()
    v = JsonValidator(path)
    raw = v.mapping(raw, "$")
    fmt, version = raw.get("format"), raw.get("version")
    if fmt != SCENARIO_FORMAT:
        v.fail("format", f"expected {SCENARIO_FORMAT!r}, got {describe_value(fmt)}")
    if version != SCENARIO_VERSION or isinstance(version, bool):
        v.fail("version", f"unsupported version {short_repr(version)}; this reader reads version "
                          f"{SCENARIO_VERSION}")
    v.no_unknown_keys(raw, "$", TOP_LEVEL_KEYS)

    classes = _parse_classes(v, raw.get("classes"))
    assets = _parse_assets(v, v.required(raw, "assets", "$"))
    objects = _parse_objects(v, v.required(raw, "objects", "$"), assets, classes)
    render = _parse_render(v, raw.get("render", {}))
    output = _parse_output(v, raw.get("output", {}))
    frames = _parse_frames(v, v.required(raw, "frames", "$"), objects)
    if "meta" in raw:
        _check_depth(v, raw["meta"], "meta", MAX_META_DEPTH)
    return Scenario(path, classes, assets, objects, render, output, frames, raw)


# ---------------------------------------------------------------------------
# sections


def _parse_classes(v: JsonValidator, raw: Any) -> tuple[str, ...]:
    if raw is None:
        v.fail("classes", "missing: a list of class names (may be empty)")
    items = v.sequence(raw, "classes")
    seen: set[str] = set()
    for i, name in enumerate(items):
        if not isinstance(name, str) or not name.strip():
            v.fail(f"classes[{i}]", f"expected a non-empty string, got {describe_value(name)}")
        if name in seen:
            v.fail(f"classes[{i}]", f"duplicate class name {name!r}")
        seen.add(name)
    return tuple(items)


def _parse_assets(v: JsonValidator, raw: Any) -> dict[str, AssetSpec]:
    assets: dict[str, AssetSpec] = {}
    for name, spec in v.mapping(raw, "assets").items():
        where = f"assets.{name}"
        spec = v.mapping(spec, where)
        v.no_unknown_keys(spec, where, ASSET_KEYS)
        ply = v.string(v.required(spec, "ply", where), f"{where}.ply")
        ply_path = require_regular_file(v.resolve(ply), source=v.path, field=f"{where}.ply")
        keep = None
        if spec.get("keep") is not None:
            keep = _parse_keep(v, spec["keep"], f"{where}.keep")
        assets[name] = AssetSpec(name, ply_path, keep)
    return assets


def _parse_keep(v: JsonValidator, raw: Any, where: str) -> np.ndarray:
    """``keep``: a list of indices, or a ``.npy`` / ``.json`` file of them. Returns
    ``[M]`` int64, sorted, unique."""
    if isinstance(raw, str):
        keep_path = v.resolve(raw)
        suffix = keep_path.suffix.lower()
        if suffix not in (".npy", ".json"):
            v.fail(where, f"keep file must be .npy or .json, got {keep_path.name!r}")
        require_regular_file(keep_path, source=v.path, field=where)
        try:
            if suffix == ".npy":
                values = np.load(keep_path, allow_pickle=False)
            else:
                values = _int_list(json.loads(keep_path.read_text(encoding="utf-8")))
        except RecursionError:
            raise InputError(keep_path, None, "invalid JSON: nested too deeply") from None
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as exc:
            v.fail(where, f"cannot read keep file {keep_path}: {exc}")
        source, field = keep_path, None
    elif isinstance(raw, list):
        values, source, field = _int_list(raw), v.path, where
    else:
        v.fail(where, "expected a list of Gaussian indices or a .npy/.json file path")
    if values is None or values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise InputError(source, field, "keep must be a flat list of integer Gaussian indices")
    if values.size and values.min() < 0:
        raise InputError(source, field, f"keep holds a negative index ({int(values.min())})")
    if values.size and int(values.max()) > np.iinfo(np.int64).max:
        raise InputError(source, field, "keep holds an index too large for any file")
    return np.unique(values.astype(np.int64))


def _int_list(raw: Any) -> np.ndarray | None:
    """A JSON list of integers (not booleans, not numeric strings) as an array; None when
    it is anything else."""
    if not isinstance(raw, list) or not all(type(x) is int for x in raw):
        return None
    if raw and (max(raw) >= 2**64 or min(raw) < -(2**63)):
        return None
    return np.asarray(raw) if raw else np.zeros(0, dtype=np.int64)


def _parse_objects(v: JsonValidator, raw: Any, assets: Mapping[str, AssetSpec],
                   classes: Sequence[str]) -> dict[str, ObjectSpec]:
    """Objects in file order. An instrument's instance is its ``instance`` value, or its
    own name when it has none; instance ids are 1, 2, ... in the order in which each
    instance's first part appears among the instruments."""
    objects: dict[str, ObjectSpec] = {}
    first_part: dict[str, ObjectSpec] = {}  # instance name -> its first part
    for name, spec in v.mapping(raw, "objects").items():
        where = f"objects.{name}"
        spec = v.mapping(spec, where)
        v.no_unknown_keys(spec, where, OBJECT_KEYS)
        asset = v.string(v.required(spec, "asset", where), f"{where}.asset")
        if asset not in assets:
            v.fail(f"{where}.asset", f"unknown asset {asset!r}; known: {sorted(assets)}")
        role = v.required(spec, "role", where)
        if not isinstance(role, str) or role not in ROLES:
            v.fail(f"{where}.role", f"expected one of {list(ROLES)}, got {describe_value(role)}")
        class_name = spec.get("class")
        class_index = instance_id = instance = None
        if role != ROLE_INSTRUMENT:
            class_name = None  # a background has no class; one written there is ignored
            if "instance" in spec:
                v.fail(f"{where}.instance", f"only instrument objects are parts of an "
                                            f"instance; {name!r} has role {role!r}")
        else:
            if not isinstance(class_name, str) or class_name not in classes:
                v.fail(f"{where}.class", f"instrument class {describe_value(class_name)} is not in "
                                         f"classes {list(classes)}")
            class_index = list(classes).index(class_name)
            instance = name if "instance" not in spec else \
                v.string(spec["instance"], f"{where}.instance")
            first = first_part.setdefault(instance, ObjectSpec(
                name, asset, role, class_name, class_index, len(first_part) + 1, instance))
            if first.class_name != class_name:
                v.fail(f"{where}.class",
                       f"class {class_name!r} differs from class {first.class_name!r} of "
                       f"objects.{first.name}, another part of instance {instance!r}; the "
                       "parts of one instance share its class")
            instance_id = first.instance_id
        objects[name] = ObjectSpec(name, asset, role, class_name, class_index, instance_id,
                                   instance)
    if len(first_part) > MAX_INSTRUMENTS:
        v.fail("objects", f"more than {MAX_INSTRUMENTS} instrument instances do not fit a "
                          "uint16 mask")
    return objects


def _parse_render(v: JsonValidator, raw: Any) -> RenderSettings:
    raw = v.mapping(raw, "render")
    d = RenderSettings()
    v.no_unknown_keys(raw, "render", RENDER_KEYS)
    background = v.matrix(raw.get("background", list(d.background)), "render.background", (3,))
    if not ((background >= 0.0) & (background <= 1.0)).all():
        v.fail("render.background", f"expected 3 numbers in [0, 1] (linear RGB), got "
                                    f"{background.tolist()}")
    near = v.number(raw.get("near", d.near), "render.near")
    far = v.number(raw.get("far", d.far), "render.far")
    if not 0 < near < far:
        v.fail("render.near", f"need 0 < near < far, got near={near}, far={far}")
    sh_degree = raw.get("sh_degree", d.sh_degree)
    if sh_degree is not None and (type(sh_degree) is not int or not 0 <= sh_degree <= 3):
        v.fail("render.sh_degree",
               f"expected null or an integer 0-3, got {describe_value(sh_degree)}")
    antialiased = v.boolean(raw.get("antialiased", d.antialiased), "render.antialiased")
    return RenderSettings((float(background[0]), float(background[1]), float(background[2])),
                          near, far, sh_degree, antialiased)


def _parse_output(v: JsonValidator, raw: Any) -> OutputSettings:
    raw = v.mapping(raw, "output")
    d = OutputSettings()
    v.no_unknown_keys(raw, "output", OUTPUT_KEYS)
    image_format = raw.get("image_format", d.image_format)
    if isinstance(image_format, str):
        image_format = IMAGE_FORMAT_ALIASES.get(image_format, image_format)
    if not isinstance(image_format, str) or image_format not in IMAGE_FORMATS:
        v.fail("output.image_format", f"expected one of {list(IMAGE_FORMATS)}, got "
                                      f"{describe_value(image_format)}")
    yolo_task = raw.get("yolo_task", d.yolo_task)
    if not isinstance(yolo_task, str) or yolo_task not in YOLO_TASKS:
        v.fail("output.yolo_task",
               f"expected one of {list(YOLO_TASKS)}, got {describe_value(yolo_task)}")
    flags = {k: v.boolean(raw.get(k, getattr(d, k)), f"output.{k}")
             for k in ("coco", "masks", "amodal", "depth")}
    val_fraction = v.number(raw.get("val_fraction", d.val_fraction), "output.val_fraction")
    if not 0.0 <= val_fraction <= 1.0:
        v.fail("output.val_fraction", f"expected a number in [0, 1], got {val_fraction}")
    split_seed = v.integer(raw.get("split_seed", d.split_seed), "output.split_seed")
    if split_seed < 0:
        v.fail("output.split_seed", f"must be an integer >= 0, got {describe_value(split_seed)}")
    min_pixels = v.integer(raw.get("min_visible_pixels", d.min_visible_pixels),
                           "output.min_visible_pixels")
    if min_pixels < 0:
        v.fail("output.min_visible_pixels", f"must be >= 0, got {describe_value(min_pixels)}")
    threshold = v.number(raw.get("mask_threshold", d.mask_threshold), "output.mask_threshold")
    if not 0.0 < threshold <= 1.0:
        v.fail("output.mask_threshold", f"expected a number in (0, 1], got {threshold}")
    return OutputSettings(image_format, yolo_task, val_fraction=val_fraction,
                          split_seed=split_seed, min_visible_pixels=min_pixels,
                          mask_threshold=threshold, **flags)


def _parse_frames(v: JsonValidator, raw: Any,
                  objects: Mapping[str, ObjectSpec]) -> tuple[FrameSpec, ...]:
    frames: list[FrameSpec] = []
    names: dict[str, int] = {}
    for i, spec in enumerate(v.sequence(raw, "frames")):
        where = f"frames[{i}]"
        spec = v.mapping(spec, where)
        v.no_unknown_keys(spec, where, FRAME_KEYS)
        name = v.string(v.required(spec, "name", where), f"{where}.name")
        if not is_valid_frame_name(name):
            v.fail(f"{where}.name", f"frame name {name!r} must be {FRAME_NAME_RULE}")
        if name in names:
            v.fail(f"{where}.name", f"duplicate frame name {name!r} (also frames[{names[name]}])")
        names[name] = i
        camera = parse_camera(v, v.required(spec, "camera", where), f"{where}.camera")
        poses: dict[str, np.ndarray] = {}
        similarities: dict[str, Similarity] = {}
        for obj, matrix in v.mapping(spec.get("poses", {}), f"{where}.poses").items():
            pose_where = f"{where}.poses.{obj}"
            if obj not in objects:
                v.fail(pose_where, f"unknown object {obj!r}; known: {sorted(objects)}")
            try:
                poses[obj] = v.matrix(matrix, pose_where, (4, 4))
                similarities[obj] = similarity_from_matrix(poses[obj], source=str(v.path),
                                                           field=pose_where)
            except InputError as exc:
                anisotropy = exc.anisotropy if isinstance(exc, PoseError) else None
                raise PoseError(exc.source, exc.field,
                                f"{exc.problem} (frame {name!r}, object {obj!r})",
                                anisotropy=anisotropy) from None
        frames.append(FrameSpec(i, name, camera, poses, similarities))
    if not frames:
        v.fail("frames", "no frames: nothing to render")
    return tuple(frames)


def parse_camera(v: JsonValidator, raw: Any, where: str) -> PinholeCamera:
    """A frame's ``camera`` object (``width``, ``height``, ``K``, ``world_to_camera``) at
    JSON path ``where``; also the recordings' camera check (gs_contract.recording)."""
    raw = v.mapping(raw, where)
    v.no_unknown_keys(raw, where, CAMERA_KEYS)
    width = v.integer(v.required(raw, "width", where), f"{where}.width")
    height = v.integer(v.required(raw, "height", where), f"{where}.height")
    for key, value in (("width", width), ("height", height)):
        if not 0 < value <= MAX_IMAGE_SIDE:
            v.fail(f"{where}.{key}", f"image size must be a positive integer <= "
                                     f"{MAX_IMAGE_SIDE}, got {describe_value(value)}")
    K = v.matrix(v.required(raw, "K", where), f"{where}.K", (3, 3))
    fx, fy = K[0, 0], K[1, 1]
    if not (fx > 0 and fy > 0):
        v.fail(f"{where}.K", f"focal lengths must be positive, got fx={fx}, fy={fy}")
    if K[0, 1] != 0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        v.fail(f"{where}.K", "expected [[fx,0,cx],[0,fy,cy],[0,0,1]] (no skew)")
    w2c = v.matrix(v.required(raw, "world_to_camera", where), f"{where}.world_to_camera",
                   (4, 4))
    if not np.allclose(w2c[3], [0, 0, 0, 1], atol=1e-6):
        v.fail(f"{where}.world_to_camera", f"last row must be [0, 0, 0, 1], got "
                                           f"{w2c[3].tolist()}")
    err, det = rotation_defect(w2c[:3, :3])
    if err > ROTATION_TOLERANCE or det <= 0:
        v.fail(f"{where}.world_to_camera",
               "the 3x3 part must be a rotation (orthonormal, det +1; no scale or mirror); "
               f"max |R^T R - I| = {err:.3g}, det = {det:.4g}")
    return PinholeCamera(width, height, K, w2c)


def _check_depth(v: JsonValidator, value: Any, where: str, limit: int) -> None:
    """Refuse lists/objects nested deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > limit:
                v.fail(where, f"nested deeper than {limit} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)

