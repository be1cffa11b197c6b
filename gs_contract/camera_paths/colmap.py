"""COLMAP sparse models (``cameras`` + ``images``, text or binary) -> registered images.

Format (COLMAP's "Output Format" documentation): ``cameras.txt`` holds one line per camera,
``CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]``; ``images.txt`` two lines per registered image,
``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` and its 2D points. The binary files hold
the same, little-endian: ``cameras.bin`` = uint64 count, then per camera uint32 id, int32
model id, uint64 width, uint64 height, float64 params; ``images.bin`` = uint64 count, then
per image uint32 id, 4 float64 quaternion (w, x, y, z), 3 float64 translation, uint32
camera id, the NUL-terminated name, uint64 point count and 24 bytes per point. The pose is
``cam_from_world`` (world -> camera, OpenCV axes): exactly the scenario's
``world_to_camera``. Principal points are in the scenario's pixel convention already.

``rigs`` / ``frames`` / ``points3D`` files are not needed (newer COLMAP versions still
write every registered image's own pose into ``images``) and are not read. When a folder
holds both, the binary model wins, as in COLMAP.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from gs_contract.camera_paths.model import (
    ImageFilter,
    RegisteredImage,
    check_size,
    distortion_to_drop,
    intrinsics,
    rigid,
    rotation_from_quaternion,
    sorted_images,
)
from gs_contract.errors import InputError
from gs_contract.files import require_regular_file

ModelFormat = Literal["binary", "text"]
FILES: dict[ModelFormat, tuple[str, str]] = {"binary": ("cameras.bin", "images.bin"),
                                              "text": ("cameras.txt", "images.txt")}
# Sub-folders searched, in order, when SOURCE itself holds no model: a COLMAP workspace
# (``sparse/0``), its ``sparse`` folder (``0``), an undistorted workspace (``sparse``).
MODEL_SUBFOLDERS = ("sparse/0", "0", "sparse")


@dataclass(frozen=True)
class CameraModel:
    """A COLMAP camera model: id, name, parameter names, and whether its projection is a
    pinhole (perhaps with polynomial or division distortion of the pinhole image)."""

    model_id: int
    name: str
    params: tuple[str, ...]
    perspective: bool


def _models() -> dict[str, CameraModel]:
    table = [
        (0, "SIMPLE_PINHOLE", "f cx cy", True),
        (1, "PINHOLE", "fx fy cx cy", True),
        (2, "SIMPLE_RADIAL", "f cx cy k", True),
        (3, "RADIAL", "f cx cy k1 k2", True),
        (4, "OPENCV", "fx fy cx cy k1 k2 p1 p2", True),
        (5, "OPENCV_FISHEYE", "fx fy cx cy k1 k2 k3 k4", False),
        (6, "FULL_OPENCV", "fx fy cx cy k1 k2 p1 p2 k3 k4 k5 k6", True),
        (7, "FOV", "fx fy cx cy omega", False),
        (8, "SIMPLE_RADIAL_FISHEYE", "f cx cy k", False),
        (9, "RADIAL_FISHEYE", "f cx cy k1 k2", False),
        (10, "THIN_PRISM_FISHEYE", "fx fy cx cy k1 k2 p1 p2 k3 k4 sx1 sy1", False),
        (11, "RAD_TAN_THIN_PRISM_FISHEYE",
         "fx fy cx cy k0 k1 k2 k3 k4 k5 p0 p1 s0 s1 s2 s3", False),
        (12, "SIMPLE_DIVISION", "f cx cy k", True),
        (13, "DIVISION", "fx fy cx cy k", True),
        (14, "SIMPLE_FISHEYE", "f cx cy", False),
        (15, "FISHEYE", "fx fy cx cy", False),
        (16, "EUCM", "fx fy cx cy alpha beta", False),
        (17, "EQUIRECTANGULAR", "w h", False),
    ]
    return {name: CameraModel(i, name, tuple(p.split()), persp) for i, name, p, persp in table}


CAMERA_MODELS = _models()
CAMERA_MODELS_BY_ID = {m.model_id: m for m in CAMERA_MODELS.values()}
PINHOLE_PARAMS = frozenset({"f", "fx", "fy", "cx", "cy"})
POSE_COLUMNS = ("QW", "QX", "QY", "QZ", "TX", "TY", "TZ")


@dataclass(frozen=True)
class _Camera:
    camera_id: int
    model: CameraModel
    width: int
    height: int
    params: tuple[float, ...]
    where: str  # "line 4" / "camera record 2 of 3 (byte 120)": for messages

    @property
    def record_id(self) -> int:
        return self.camera_id


@dataclass(frozen=True)
class _Image:
    image_id: int
    quaternion: tuple[float, ...]
    translation: tuple[float, ...]
    camera_id: int
    name: str
    where: str

    @property
    def record_id(self) -> int:
        return self.image_id


_Record = TypeVar("_Record", _Camera, _Image)


def find_colmap_model(path: str | Path) -> tuple[Path, ModelFormat] | None:
    """The model folder and format at ``path`` (a folder holding ``cameras`` + ``images``,
    or a workspace / ``sparse`` folder above one, see :data:`MODEL_SUBFOLDERS`); None when
    neither file of a pair is anywhere there. A folder with just one file of a pair is
    returned too, so that the reader names the missing file."""
    path = Path(path)
    for folder in (path, *(path / sub for sub in MODEL_SUBFOLDERS)):
        for fmt in ("binary", "text"):
            if any((folder / name).exists() for name in FILES[fmt]):
                return folder, fmt
    return None


def read_colmap_model(folder: str | Path, fmt: ModelFormat | None = None, *,
                      ignore_distortion: bool = False,
                      image_filter: ImageFilter | None = None) -> list[RegisteredImage]:
    """The registered images of the COLMAP model in ``folder``, sorted by name.

    Args:
        folder: the folder holding ``cameras.bin`` + ``images.bin`` or the ``.txt`` pair.
        fmt: ``"binary"`` or ``"text"``; None: binary when ``cameras.bin`` is there.
        ignore_distortion: keep the pinhole part of a distorted perspective camera
            (SIMPLE_RADIAL, RADIAL, OPENCV, FULL_OPENCV, *DIVISION) instead of refusing
            it; the dropped coefficients are in each image's ``dropped_distortion``.
        image_filter: keep only images whose name passes (checks of cameras apply to
            the kept images only).

    Raises:
        InputError: naming the file and the line (text) or the record and byte offset
            (binary): a missing file, a malformed or truncated record, an unknown camera
            model, a wrong parameter count, a duplicate id, an image whose camera id is
            not in the cameras file, a quaternion that is not a rotation, a camera that
            is not a pinhole.
    """
    folder = Path(folder)
    if fmt is None:
        fmt = "binary" if (folder / "cameras.bin").exists() else "text"
    cameras_path, images_path = (folder / name for name in FILES[fmt])
    for p in (cameras_path, images_path):
        require_regular_file(p, source=p, field=None)
    if fmt == "binary":
        cameras = _by_id(_read_cameras_binary(cameras_path), cameras_path, "camera")
        images = _by_id(_read_images_binary(images_path), images_path, "image")
    else:
        cameras = _by_id(_read_cameras_text(cameras_path), cameras_path, "camera")
        images = _by_id(_read_images_text(images_path), images_path, "image")
    out = []
    for image in images.values():
        if image_filter is not None and not image_filter(image.name):
            continue
        camera = cameras.get(image.camera_id)
        if camera is None:
            raise InputError(images_path, image.where,
                             f"image {image.name!r} uses camera {image.camera_id}, which "
                             f"{cameras_path.name} does not hold (cameras: "
                             f"{sorted(cameras)[:10]})")
        out.append(_registered(image, camera, cameras_path, images_path, ignore_distortion))
    return sorted_images(out)


def _registered(image: _Image, camera: _Camera, cameras_path: Path, images_path: Path,
                ignore_distortion: bool) -> RegisteredImage:
    model = camera.model
    if not model.perspective:
        raise InputError(cameras_path, camera.where,
                         f"camera {camera.camera_id} is {model.name}, not a pinhole projection "
                         f"(used by image {image.name!r}); undistort the images to a PINHOLE "
                         "model first (colmap image_undistorter)")
    p = dict(zip(model.params, camera.params, strict=True))
    fx, fy = (p["f"], p["f"]) if "f" in p else (p["fx"], p["fy"])
    if not (fx > 0 and fy > 0):
        raise InputError(cameras_path, camera.where,
                         f"camera {camera.camera_id}: focal lengths must be positive, got "
                         f"{fx} and {fy}")
    dropped = distortion_to_drop({k: v for k, v in p.items() if k not in PINHOLE_PARAMS},
                                 model=model.name, ignore=ignore_distortion,
                                 source=cameras_path,
                                 field=f"{camera.where} (camera {camera.camera_id})")
    rotation = rotation_from_quaternion(image.quaternion, source=images_path,
                                        field=f"{image.where} (image {image.name!r})")
    return RegisteredImage(image.name, camera.width, camera.height,
                           intrinsics(fx, fy, p["cx"], p["cy"]),
                           rigid(rotation, image.translation), model.name, dropped)


def _by_id(records: Iterator[_Record], path: Path, what: str) -> dict[int, _Record]:
    """Records by id (``camera_id`` / ``image_id``); a repeated id is refused."""
    out: dict[int, _Record] = {}
    for record in records:
        key = record.record_id
        if key in out:
            raise InputError(path, record.where, f"duplicate {what} id {key} (also "
                                                 f"{out[key].where})")
        out[key] = record
    return out


# ---------------------------------------------------------------------------
# text


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)`` of every line of a text model file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"cannot read: {exc}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        yield number, line.strip()


def _number(token: str, path: Path, where: str, what: str, kind: type) -> float | int:
    try:
        value = kind(token)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise InputError(path, where, f"{what} must be {expected}, got {token!r}") from None
    if kind is float and not np.isfinite(value):
        raise InputError(path, where, f"{what} must be finite, got {token!r}")
    return value


def _read_cameras_text(path: Path) -> Iterator[_Camera]:
    for number, line in _data_lines(path):
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        tokens = line.split()
        if len(tokens) < 4:
            raise InputError(path, where, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[], got "
                                          f"{len(tokens)} values")
        model = CAMERA_MODELS.get(tokens[1])
        if model is None:
            raise InputError(path, where, f"unknown camera model {tokens[1]!r}; COLMAP's are "
                                          f"{sorted(CAMERA_MODELS)}")
        params = tokens[4:]
        if len(params) != len(model.params):
            raise InputError(path, where, f"{model.name} takes {len(model.params)} parameters "
                                          f"({', '.join(model.params)}), got {len(params)}")
        camera_id = _number(tokens[0], path, where, "CAMERA_ID", int)
        width = _number(tokens[2], path, where, "WIDTH", int)
        height = _number(tokens[3], path, where, "HEIGHT", int)
        check_size(width, height, source=path, field=where)
        yield _Camera(camera_id, model, width, height,
                      tuple(_number(t, path, where, name, float)
                            for t, name in zip(params, model.params, strict=True)), where)


def _read_images_text(path: Path) -> Iterator[_Image]:
    lines = _data_lines(path)
    for number, line in lines:
        if not line or line.startswith("#"):
            continue
        where = f"line {number}"
        tokens = line.split()
        if len(tokens) < 10:
            raise InputError(path, where, "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, "
                                          f"got {len(tokens)} values")
        image_id = _number(tokens[0], path, where, "IMAGE_ID", int)
        values = [_number(t, path, where, name, float)
                  for t, name in zip(tokens[1:8], POSE_COLUMNS, strict=True)]
        camera_id = _number(tokens[8], path, where, "CAMERA_ID", int)
        name = " ".join(tokens[9:])
        points = next(lines, None)  # the POINTS2D line (may be empty; may be absent at EOF)
        if points is not None and len(points[1].split()) % 3:
            raise InputError(path, f"line {points[0]}",
                             f"expected the POINTS2D line of image {name!r} (X Y POINT3D_ID "
                             f"triples), got {len(points[1].split())} values; images.txt "
                             "holds two lines per image")
        yield _Image(image_id, tuple(values[:4]), tuple(values[4:]), camera_id, name, where)


# ---------------------------------------------------------------------------
# binary


class _Reader:
    """Little-endian records from a byte string; running off its end is an InputError
    naming the file, the record and the byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as exc:
            raise InputError(path, None, f"cannot read: {exc}") from None
        self.offset = 0
        self.record = "header"

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self.data):
            self.truncated()
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += size
        return values

    def skip(self, size: int) -> None:
        if self.offset + size > len(self.data):
            self.truncated()
        self.offset += size

    def c_string(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            self.truncated()
        raw = self.data[self.offset:end]
        self.offset = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(self.path, self.record, "image name is not UTF-8") from None

    def truncated(self) -> None:
        raise InputError(self.path, f"{self.record} (byte {self.offset})",
                         f"file ends early ({len(self.data)} bytes): truncated or not a "
                         "COLMAP binary model")


def _read_cameras_binary(path: Path) -> Iterator[_Camera]:
    r = _Reader(path)
    (count,) = r.take("<Q")
    for i in range(count):
        r.record = f"camera record {i + 1} of {count}"
        where = f"{r.record} (byte {r.offset})"
        camera_id, model_id, width, height = r.take("<IiQQ")
        model = CAMERA_MODELS_BY_ID.get(model_id)
        if model is None:
            raise InputError(path, where, f"unknown camera model id {model_id}; COLMAP's are "
                                          f"0 to {max(CAMERA_MODELS_BY_ID)}")
        params = r.take(f"<{len(model.params)}d")
        check_size(width, height, source=path, field=where)
        if not np.isfinite(params).all():
            raise InputError(path, where, f"camera {camera_id}: parameters must be finite, "
                                          f"got {list(params)}")
        yield _Camera(camera_id, model, width, height, params, where)


def _read_images_binary(path: Path) -> Iterator[_Image]:
    r = _Reader(path)
    (count,) = r.take("<Q")
    for i in range(count):
        r.record = f"image record {i + 1} of {count}"
        where = f"{r.record} (byte {r.offset})"
        (image_id,) = r.take("<I")
        pose = r.take("<7d")
        (camera_id,) = r.take("<I")
        name = r.c_string()
        (points,) = r.take("<Q")
        r.skip(24 * points)
        if not np.isfinite(pose[4:]).all():
            raise InputError(path, where, f"image {name!r}: translation must be finite, got "
                                          f"{list(pose[4:])}")
        yield _Image(image_id, pose[:4], pose[4:], camera_id, name, where)
