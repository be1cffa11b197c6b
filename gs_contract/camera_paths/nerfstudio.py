"""nerfstudio ``transforms.json`` (+ optional ``dataparser_transforms.json``) -> registered
images.

What is assumed, following nerfstudio's own reader (``nerfstudio_dataparser.py``, 1.x):

- ``frames[i].transform_matrix`` is camera-to-world, 4x4 (or its top 3x4), with the camera
  in OpenGL / Blender axes (x right, y up, looking down -z). It must be rigid.
- Intrinsics ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` (pixels, pixel centres at
  +0.5 as in COLMAP): a top-level value applies to every frame and wins over a frame's own,
  as in nerfstudio; otherwise each frame must give it.
- ``camera_model`` (top level): absent, ``SIMPLE_PINHOLE``, ``PINHOLE``, ``SIMPLE_RADIAL``,
  ``RADIAL`` or ``OPENCV`` is a pinhole projection; distortion ``k1``-``k4``, ``p1``, ``p2``
  (top level if any is there, else per frame; or a top-level ``distortion_params`` list in
  that order) must be zero unless the caller drops them. Fisheye and equirectangular
  models are refused.
- ``applied_transform`` (3x4, written by ``ns-process-data``) maps the original capture's
  world (e.g. COLMAP's) to the file's world. When absent and a ``colmap/sparse/0`` folder
  sits beside the file, nerfstudio assumes ``[[0,1,0,0],[1,0,0,0],[0,0,-1,0]]``; so do we.
- ``dataparser_transforms.json`` (``{"transform": 3x4, "scale": s}``, written by
  ``ns-train``) maps ORIGINAL-world points into the space the model was trained in:
  ``p_trained = s * transform @ [p_original; 1]`` (nerfstudio >= 1.0, where the transform
  includes ``applied_transform``, and the first with splatfacto). A splatfacto PLY
  exported by ``ns-export gaussian-splat`` lies in that trained space. The training
  cameras are ``transform @ inverse(applied_transform) @ c2w`` with the translation
  multiplied by ``s / applied_scale`` (``applied_scale`` 1 when absent), exactly as the
  dataparser makes them; that is what is returned then.

Three worlds can be asked for (:data:`World`): ``"file"`` (the file's own world),
``"original"`` (``applied_transform`` undone: e.g. the COLMAP world that a splat trained
with the original 3DGS code on the same model lives in) and ``"trained"`` (needs the
dataparser transforms).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from gs_contract.camera import ROTATION_TOLERANCE, rotation_defect
from gs_contract.camera_paths.model import (
    ImageFilter,
    RegisteredImage,
    check_size,
    distortion_to_drop,
    intrinsics,
    inverse_rigid,
    sorted_images,
)
from gs_contract.errors import InputError
from gs_contract.jsonfile import JsonValidator, read_json_file

World = Literal["file", "original", "trained"]
PINHOLE_MODELS = frozenset({"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"})
INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")  # nerfstudio's distortion_params order
# nerfstudio's applied_transform for COLMAP datasets made before the field was written.
LEGACY_COLMAP_APPLIED_TRANSFORM = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]]
# OpenGL camera axes (y up, z back) -> OpenCV (y down, z forward), as a right factor.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def read_transforms_json(path: str | Path, *, world: World = "file",
                         dataparser_transforms: str | Path | None = None,
                         ignore_distortion: bool = False,
                         image_filter: ImageFilter | None = None) -> list[RegisteredImage]:
    """The frames of a nerfstudio ``transforms.json`` as registered images, sorted by
    ``file_path`` (as nerfstudio sorts them).

    Args:
        path: the ``transforms.json``.
        world: which world the poses are returned in (module docstring).
        dataparser_transforms: the ``dataparser_transforms.json`` of the trained model;
            required by, and only allowed with, ``world="trained"``.
        ignore_distortion: keep the pinhole part of a distorted camera instead of refusing.
        image_filter: keep only frames whose name passes.

    Raises:
        InputError: naming the file and the JSON path (``frames[3].transform_matrix``).
    """
    path = Path(path)
    if (world == "trained") != (dataparser_transforms is not None):
        raise InputError(dataparser_transforms or path, None,
                         "a dataparser_transforms.json goes with the trained world, and only "
                         "with it")
    v = JsonValidator(path)
    meta = v.mapping(read_json_file(path), "$")
    camera_model = v.string(meta.get("camera_model", "PINHOLE"), "camera_model")
    if camera_model not in PINHOLE_MODELS:
        v.fail("camera_model", f"{camera_model} is not a pinhole projection; supported: "
                               f"{sorted(PINHOLE_MODELS)}")
    to_world = _world_change(v, meta, world, dataparser_transforms)
    frames = v.sequence(v.required(meta, "frames", "$"), "frames")
    images = []
    for i, frame in enumerate(frames):
        where = f"frames[{i}]"
        frame = v.mapping(frame, where)
        name = v.string(v.required(frame, "file_path", where), f"{where}.file_path")
        name = name[2:] if name.startswith("./") else name
        if image_filter is not None and not image_filter(name):
            continue
        images.append(_image(v, meta, frame, where, name, camera_model, to_world,
                             ignore_distortion))
    return sorted_images(images)


def read_dataparser_transforms(path: str | Path) -> tuple[np.ndarray, float]:
    """``(transform [4, 4] rigid, scale > 0)`` of a nerfstudio ``dataparser_transforms.json``.

    Raises:
        InputError: naming the file and the field.
    """
    v = JsonValidator(Path(path))
    raw = v.mapping(read_json_file(path), "$")
    transform = _rigid_rows(v, v.required(raw, "transform", "$"), "transform")
    scale = v.number(v.required(raw, "scale", "$"), "scale")
    if scale <= 0:
        v.fail("scale", f"must be positive, got {scale}")
    return transform, scale


def _world_change(v: JsonValidator, meta: dict[str, Any], world: World,
                  dataparser_transforms: str | Path | None) -> tuple[np.ndarray, float]:
    """``(M [4, 4] rigid, s)``: a file-world point p goes to ``s * (M @ p)`` (homogeneous)."""
    if world == "file":
        return np.eye(4), 1.0
    if "applied_transform" in meta:
        applied = _rigid_rows(v, meta["applied_transform"], "applied_transform")
    elif (v.path.parent / "colmap" / "sparse" / "0").is_dir():
        applied = np.array([*LEGACY_COLMAP_APPLIED_TRANSFORM, [0, 0, 0, 1]], dtype=np.float64)
    else:
        applied = np.eye(4)
    if world == "original":
        return inverse_rigid(applied), 1.0
    transform, scale = read_dataparser_transforms(dataparser_transforms)
    applied_scale = v.number(meta.get("applied_scale", 1.0), "applied_scale")
    if applied_scale <= 0:
        v.fail("applied_scale", f"must be positive, got {applied_scale}")
    return transform @ inverse_rigid(applied), scale / applied_scale


def _image(v: JsonValidator, meta: dict[str, Any], frame: dict[str, Any], where: str,
           name: str, camera_model: str, to_world: tuple[np.ndarray, float],
           ignore_distortion: bool) -> RegisteredImage:
    values = {}
    for key in INTRINSICS:
        if key in meta:
            values[key], field = meta[key], key
        elif key in frame:
            values[key], field = frame[key], f"{where}.{key}"
        else:
            v.fail(f"{where}.{key}", "missing: neither the frame nor the top level gives it")
        read = v.integer if key in ("w", "h") else v.number
        values[key] = read(values[key], field)
        if key in ("fl_x", "fl_y") and values[key] <= 0:
            v.fail(field, f"focal length must be positive, got {values[key]}")
    check_size(values["w"], values["h"], source=v.path, field=f"{where} (w, h)")
    dropped = distortion_to_drop(_distortion(v, meta, frame, where), model=camera_model,
                                 ignore=ignore_distortion, source=v.path, field=where)
    c2w = _rigid_rows(v, v.required(frame, "transform_matrix", where),
                      f"{where}.transform_matrix")
    change, scale = to_world
    c2w = change @ c2w
    c2w[:3, 3] *= scale
    return RegisteredImage(name, values["w"], values["h"],
                           intrinsics(values["fl_x"], values["fl_y"], values["cx"], values["cy"]),
                           inverse_rigid(c2w @ OPENGL_TO_OPENCV), camera_model, dropped)


def _distortion(v: JsonValidator, meta: dict[str, Any], frame: dict[str, Any],
                where: str) -> dict[str, float]:
    if "distortion_params" in meta:
        params = v.matrix(meta["distortion_params"], "distortion_params", (len(DISTORTION),))
        return dict(zip(DISTORTION, params.tolist(), strict=True))
    source, prefix = (meta, "") if any(k in meta for k in DISTORTION) else (frame, f"{where}.")
    return {k: v.number(source[k], prefix + k) for k in DISTORTION if k in source}


def _rigid_rows(v: JsonValidator, raw: Any, where: str) -> np.ndarray:
    """A 3x4 or 4x4 JSON matrix as a ``[4, 4]`` rigid transform (refused otherwise)."""
    rows = 3 if isinstance(raw, list) and len(raw) == 3 else 4
    m = v.matrix(raw, where, (rows, 4))
    if rows == 3:
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    elif not np.allclose(m[3], [0, 0, 0, 1], atol=1e-6):
        v.fail(where, f"last row must be [0, 0, 0, 1], got {m[3].tolist()}")
    err, det = rotation_defect(m[:3, :3])
    if err > ROTATION_TOLERANCE or det <= 0:
        v.fail(where, "the 3x3 part must be a rotation (orthonormal, det +1; no scale or "
                      f"mirror); max |R^T R - I| = {err:.3g}, det = {det:.4g}")
    m[3] = [0.0, 0.0, 0.0, 1.0]
    return m
