"""Reading and validating ``gs-scenario`` v1 files (DESIGN contract 1).

Everything the renderer needs is checked here, up front, so that a bad file
fails in a fraction of a second with one message that names the JSON path of
the offending field (``frames[3].camera.K``), instead of failing mid-render.

The parsed result is a tree of frozen dataclasses; the raw JSON dict is kept
alongside for the manifest and for fingerprinting.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gs_contract.camera import PinholeCamera as Camera
from gs_contract.errors import InputError, PoseError
from gs_contract.pose import Similarity, similarity_from_matrix

SCENARIO_FORMAT = "gs-scenario"
SCENARIO_VERSION = 1

Role = Literal["background", "instrument"]
ImageFormat = Literal["png", "jpg"]
YoloTask = Literal["detect", "segment"]

ROLES: tuple[str, ...] = ("background", "instrument")
TOP_LEVEL_KEYS = frozenset(
    {"format", "version", "classes", "assets", "objects", "render", "output", "frames", "meta"}
)
# A frame name becomes a file name: keep it portable.
FRAME_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RenderSettings:
    """The ``render`` block. ``background`` is linear RGB in [0, 1]."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    near: float = 0.01
    far: float = 1e10
    sh_degree: int | None = None
    antialiased: bool = False


@dataclass(frozen=True)
class OutputSettings:
    """The ``output`` block: what the dataset writer produces."""

    image_format: ImageFormat = "png"
    yolo_task: YoloTask = "detect"
    coco: bool = True
    masks: bool = True
    amodal: bool = False
    depth: bool = False
    val_fraction: float = 0.2
    split_seed: int = 0
    min_visible_pixels: int = 20
    mask_threshold: float = 0.5


@dataclass(frozen=True)
class AssetSpec:
    """One Gaussian file. ``keep``: file row indices to keep (None = all)."""

    name: str
    ply: Path
    keep: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ObjectSpec:
    """A placed asset. Instruments carry a class and an instance id (1-based)."""

    name: str
    asset: str
    role: Role
    class_name: str | None = None
    class_index: int | None = None
    instance_id: int | None = None


@dataclass(frozen=True)
class FrameSpec:
    """One frame: the camera and the pose of each present object.

    ``poses``: ``[4, 4]`` float64 asset -> world matrices as written in the file;
    ``similarities``: the same poses checked and split into (s, R, t), once, here.
    """

    index: int
    name: str
    camera: Camera
    poses: dict[str, np.ndarray]
    similarities: dict[str, Similarity] = field(compare=False)


@dataclass(frozen=True)
class Scenario:
    path: Path
    classes: tuple[str, ...]
    assets: dict[str, AssetSpec]
    objects: dict[str, ObjectSpec]
    render: RenderSettings
    output: OutputSettings
    frames: tuple[FrameSpec, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def instruments(self) -> list[ObjectSpec]:
        """Instrument objects in instance-id order (= file order)."""
        return [o for o in self.objects.values() if o.role == "instrument"]

    def fingerprint(self) -> str:
        """sha256 of the canonical scenario, each asset path replaced by the sha256 of
        the file's content (and ``keep`` files by their values).

        Two scenarios with the same fingerprint produce the same dataset; a used
        output folder only accepts a scenario with the same fingerprint. A splat file
        changed in place therefore counts as another scenario, while moving the
        scenario and its assets together does not.

        Raises:
            InputError: an asset file cannot be read.
        """
        canon = json.loads(json.dumps(self.raw))
        for name, asset in canon.get("assets", {}).items():
            asset["ply"] = "sha256:" + _file_sha256(self.assets[name].ply, self.path,
                                                    f"assets.{name}.ply")
            if isinstance(asset.get("keep"), str):
                asset["keep"] = self.assets[name].keep.tolist()  # type: ignore[union-attr]
        canon.pop("meta", None)
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_sha256(path: Path, scenario_path: Path, field: str) -> str:
    """Hex sha256 of a file's bytes, read in 8 MiB blocks (0.21 s per 250 MB measured)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(8 << 20):
                digest.update(block)
    except OSError as exc:
        raise InputError(scenario_path, field,
                         f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()


# ---------------------------------------------------------------------------
# loading


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file. Raises :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except IsADirectoryError:
        raise InputError(path, None, "is a directory, expected a scenario .json file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"cannot read: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno} column {exc.colno}",
                         f"invalid JSON: {exc.msg}") from None
    return parse_scenario(raw, path)


def parse_scenario(raw: Any, path: str | Path) -> Scenario:
    """Validate an already-decoded scenario dict; ``path`` locates relative asset paths."""
    path = Path(path).resolve()
    v = _Validator(path)
    raw = v.mapping(raw, "$")
    fmt, version = raw.get("format"), raw.get("version")
    if fmt != SCENARIO_FORMAT:
        v.fail("format", f"expected {SCENARIO_FORMAT!r}, got {fmt!r}")
    if version != SCENARIO_VERSION or isinstance(version, bool):
        v.fail("version", f"unsupported version {version!r}; this backend reads version "
                          f"{SCENARIO_VERSION}")
    unknown = sorted(set(raw) - TOP_LEVEL_KEYS)
    if unknown:
        v.fail(unknown[0], f"unknown key; expected one of {sorted(TOP_LEVEL_KEYS)}")

    classes = _parse_classes(v, raw.get("classes"))
    assets = _parse_assets(v, v.required(raw, "assets", "$"))
    objects = _parse_objects(v, v.required(raw, "objects", "$"), assets, classes)
    render = _parse_render(v, raw.get("render", {}))
    output = _parse_output(v, raw.get("output", {}))
    frames = _parse_frames(v, v.required(raw, "frames", "$"), objects)
    return Scenario(path, classes, assets, objects, render, output, frames, raw)


# ---------------------------------------------------------------------------
# sections


def _parse_classes(v: _Validator, raw: Any) -> tuple[str, ...]:
    if raw is None:
        v.fail("classes", "missing: a list of class names (may be empty)")
    items = v.sequence(raw, "classes")
    seen: set[str] = set()
    for i, name in enumerate(items):
        if not isinstance(name, str) or not name.strip():
            v.fail(f"classes[{i}]", f"expected a non-empty string, got {name!r}")
        if name in seen:
            v.fail(f"classes[{i}]", f"duplicate class name {name!r}")
        seen.add(name)
    return tuple(items)


def _parse_assets(v: _Validator, raw: Any) -> dict[str, AssetSpec]:
    assets: dict[str, AssetSpec] = {}
    for name, spec in v.mapping(raw, "assets").items():
        where = f"assets.{name}"
        spec = v.mapping(spec, where)
        v.no_unknown_keys(spec, where, {"ply", "keep"})
        ply = v.string(v.required(spec, "ply", where), f"{where}.ply")
        ply_path = v.resolve(ply)
        if not ply_path.is_file():
            problem = "is a directory" if ply_path.is_dir() else "file not found"
            v.fail(f"{where}.ply", f"{problem}: {ply_path}")
        keep = None
        if spec.get("keep") is not None:
            keep = _parse_keep(v, spec["keep"], f"{where}.keep")
        assets[name] = AssetSpec(name, ply_path, keep)
    return assets


def _parse_keep(v: _Validator, raw: Any, where: str) -> np.ndarray:
    source: str | Path = v.path
    if isinstance(raw, str):
        keep_path = v.resolve(raw)
        source = keep_path
        try:
            if keep_path.suffix.lower() == ".npy":
                values = np.load(keep_path, allow_pickle=False)
            elif keep_path.suffix.lower() == ".json":
                values = np.asarray(json.loads(keep_path.read_text(encoding="utf-8")))
            else:
                v.fail(where, f"keep file must be .npy or .json, got {keep_path.name!r}")
        except FileNotFoundError:
            v.fail(where, f"keep file not found: {keep_path}")
        except (OSError, ValueError) as exc:
            v.fail(where, f"cannot read keep file {keep_path}: {exc}")
    elif isinstance(raw, list):
        values = np.asarray(raw)
    else:
        v.fail(where, "expected a list of Gaussian indices or a .npy/.json file path")
    if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise InputError(source, where if source == v.path else None,
                         "keep must be a flat list of integer Gaussian indices")
    if values.size and values.min() < 0:
        raise InputError(source, where if source == v.path else None,
                         f"keep holds a negative index ({int(values.min())})")
    return np.unique(values.astype(np.int64))


def _parse_objects(v: _Validator, raw: Any, assets: Mapping[str, AssetSpec],
                   classes: Sequence[str]) -> dict[str, ObjectSpec]:
    objects: dict[str, ObjectSpec] = {}
    next_instance = 1
    for name, spec in v.mapping(raw, "objects").items():
        where = f"objects.{name}"
        spec = v.mapping(spec, where)
        v.no_unknown_keys(spec, where, {"asset", "role", "class"})
        asset = v.string(v.required(spec, "asset", where), f"{where}.asset")
        if asset not in assets:
            v.fail(f"{where}.asset", f"unknown asset {asset!r}; known: {sorted(assets)}")
        role = v.required(spec, "role", where)
        if role not in ROLES:
            v.fail(f"{where}.role", f"expected one of {list(ROLES)}, got {role!r}")
        class_name = spec.get("class")
        class_index = instance_id = None
        if role == "instrument":
            if class_name not in classes:
                v.fail(f"{where}.class",
                       f"instrument class {class_name!r} is not in classes {list(classes)}")
            class_index = list(classes).index(class_name)
            instance_id = next_instance
            next_instance += 1
        objects[name] = ObjectSpec(name, asset, role, class_name, class_index, instance_id)
    if next_instance > 65535:
        v.fail("objects", "more than 65535 instruments do not fit a uint16 mask")
    return objects


def _parse_render(v: _Validator, raw: Any) -> RenderSettings:
    raw = v.mapping(raw, "render")
    d = RenderSettings()
    v.no_unknown_keys(raw, "render", set(d.__dataclass_fields__))
    bg = raw.get("background", list(d.background))
    bg_arr = v.float_array(bg, "render.background", (3,))
    near = v.number(raw.get("near", d.near), "render.near")
    far = v.number(raw.get("far", d.far), "render.far")
    if not 0 < near < far:
        v.fail("render.near", f"need 0 < near < far, got near={near}, far={far}")
    sh_degree = raw.get("sh_degree", d.sh_degree)
    if sh_degree is not None and (type(sh_degree) is not int or not 0 <= sh_degree <= 3):
        v.fail("render.sh_degree", f"expected null or an integer 0-3, got {sh_degree!r}")
    antialiased = v.boolean(raw.get("antialiased", d.antialiased), "render.antialiased")
    return RenderSettings(tuple(float(x) for x in bg_arr), near, far, sh_degree, antialiased)


def _parse_output(v: _Validator, raw: Any) -> OutputSettings:
    raw = v.mapping(raw, "output")
    d = OutputSettings()
    v.no_unknown_keys(raw, "output", set(d.__dataclass_fields__))
    image_format = raw.get("image_format", d.image_format)
    if image_format == "jpeg":
        image_format = "jpg"
    if image_format not in ("png", "jpg"):
        v.fail("output.image_format", f"expected 'png' or 'jpg', got {image_format!r}")
    yolo_task = raw.get("yolo_task", d.yolo_task)
    if yolo_task not in ("detect", "segment"):
        v.fail("output.yolo_task", f"expected 'detect' or 'segment', got {yolo_task!r}")
    flags = {k: v.boolean(raw.get(k, getattr(d, k)), f"output.{k}")
             for k in ("coco", "masks", "amodal", "depth")}
    val_fraction = v.number(raw.get("val_fraction", d.val_fraction), "output.val_fraction")
    if not 0.0 <= val_fraction <= 1.0:
        v.fail("output.val_fraction", f"expected a number in [0, 1], got {val_fraction}")
    split_seed = v.integer(raw.get("split_seed", d.split_seed), "output.split_seed")
    min_pixels = v.integer(raw.get("min_visible_pixels", d.min_visible_pixels),
                           "output.min_visible_pixels")
    if min_pixels < 0:
        v.fail("output.min_visible_pixels", f"must be >= 0, got {min_pixels}")
    threshold = v.number(raw.get("mask_threshold", d.mask_threshold), "output.mask_threshold")
    if not 0.0 < threshold <= 1.0:
        v.fail("output.mask_threshold", f"expected a number in (0, 1], got {threshold}")
    return OutputSettings(image_format, yolo_task, val_fraction=val_fraction,
                          split_seed=split_seed, min_visible_pixels=min_pixels,
                          mask_threshold=threshold, **flags)


def _parse_frames(v: _Validator, raw: Any,
                  objects: Mapping[str, ObjectSpec]) -> tuple[FrameSpec, ...]:
    frames: list[FrameSpec] = []
    names: dict[str, int] = {}
    for i, spec in enumerate(v.sequence(raw, "frames")):
        where = f"frames[{i}]"
        spec = v.mapping(spec, where)
        v.no_unknown_keys(spec, where, {"name", "camera", "poses"})
        name = v.string(v.required(spec, "name", where), f"{where}.name")
        if not FRAME_NAME_PATTERN.match(name):
            v.fail(f"{where}.name", f"frame name {name!r} must be 1-128 characters of letters, "
                                    "digits, '.', '_' or '-' (it becomes a file name)")
        if name in names:
            v.fail(f"{where}.name", f"duplicate frame name {name!r} (also frames[{names[name]}])")
        names[name] = i
        camera = _parse_camera(v, v.required(spec, "camera", where), f"{where}.camera")
        poses: dict[str, np.ndarray] = {}
        similarities: dict[str, Similarity] = {}
        for obj, matrix in v.mapping(spec.get("poses", {}), f"{where}.poses").items():
            pose_where = f"{where}.poses.{obj}"
            if obj not in objects:
                v.fail(pose_where, f"unknown object {obj!r}; known: {sorted(objects)}")
            try:
                similarities[obj] = similarity_from_matrix(matrix, source=str(v.path),
                                                           field=pose_where)
            except PoseError as exc:
                raise PoseError(exc.source, exc.field,
                                f"{exc.problem} (frame {name!r}, object {obj!r})",
                                anisotropy=exc.anisotropy) from None
            poses[obj] = np.asarray(matrix, dtype=np.float64)
        frames.append(FrameSpec(i, name, camera, poses, similarities))
    if not frames:
        v.fail("frames", "no frames: nothing to render")
    return tuple(frames)


def _parse_camera(v: _Validator, raw: Any, where: str) -> Camera:
    raw = v.mapping(raw, where)
    v.no_unknown_keys(raw, where, {"width", "height", "K", "world_to_camera"})
    width = v.integer(v.required(raw, "width", where), f"{where}.width")
    height = v.integer(v.required(raw, "height", where), f"{where}.height")
    for key, value in (("width", width), ("height", height)):
        if not 0 < value <= 32768:
            v.fail(f"{where}.{key}", f"image size must be a positive integer <= 32768, "
                                     f"got {value}")
    K = v.float_array(v.required(raw, "K", where), f"{where}.K", (3, 3))
    fx, fy = K[0, 0], K[1, 1]
    if not (fx > 0 and fy > 0):
        v.fail(f"{where}.K", f"focal lengths must be positive, got fx={fx}, fy={fy}")
    if K[0, 1] != 0 or K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
        v.fail(f"{where}.K", "expected [[fx,0,cx],[0,fy,cy],[0,0,1]] (no skew)")
    w2c = v.float_array(v.required(raw, "world_to_camera", where),
                        f"{where}.world_to_camera", (4, 4))
    if not np.allclose(w2c[3], [0, 0, 0, 1], atol=1e-6):
        v.fail(f"{where}.world_to_camera", f"last row must be [0, 0, 0, 1], got "
                                           f"{w2c[3].tolist()}")
    rot = w2c[:3, :3]
    err = float(np.abs(rot @ rot.T - np.eye(3)).max())
    if err > 1e-4 or np.linalg.det(rot) <= 0:
        v.fail(f"{where}.world_to_camera",
               "the 3x3 part must be a rotation (orthonormal, det +1; no scale or mirror); "
               f"max |R R^T - I| = {err:.3g}, det = {np.linalg.det(rot):.4g}")
    return Camera(width, height, K, w2c)


# ---------------------------------------------------------------------------
# small typed accessors that know the JSON path of what they read


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> None:
        raise InputError(self.path, where, problem)

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def required(self, spec: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in spec:
            self.fail(_join(where, key), "missing required field")
        return spec[key]

    def no_unknown_keys(self, spec: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        unknown = sorted(set(spec) - allowed)
        if unknown:
            self.fail(_join(where, unknown[0]), f"unknown key; expected one of {sorted(allowed)}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def sequence(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {_kind(value)}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"expected a non-empty string, got {_kind(value)}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true or false, got {_kind(value)}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            self.fail(where, f"expected a finite number, got {_kind(value)}")
        return float(value)

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"expected an integer, got {_kind(value)}")
        return value

    def float_array(self, value: Any, where: str, shape: tuple[int, ...]) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            self.fail(where, f"expected a {'x'.join(map(str, shape))} array of numbers")
        if arr.shape != shape:
            self.fail(where, f"expected shape {list(shape)}, got {list(arr.shape)}")
        if not np.isfinite(arr).all():
            self.fail(where, "contains NaN or infinity")
        return arr


def _join(where: str, key: str) -> str:
    return key if where == "$" else f"{where}.{key}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 40 else "a string"
    return type(value).__name__.replace("dict", "object").replace("list", "list")
