"""Blender camera <-> pinhole camera of the scenario file (DESIGN contract 2), both ways.

This is the one place where Blender's camera conventions meet the scenario's:

- intrinsics ``K`` ``[3, 3]`` in pixels, (0, 0) at the top-left corner of the
  top-left pixel, pixel centres at +0.5 (gsplat / COLMAP);
- ``world_to_camera`` ``[4, 4]`` in OpenCV axes (x right, y down, z forward),
  ``inv(normalized(matrix_world) @ diag(1, -1, -1, 1))``.

The maths follows Blender's own camera view plane (``BKE_camera_params_compute_viewplane``,
the same numbers ``Camera.view_frame`` and ``bpy_extras.object_utils.world_to_camera_view``
use): the sensor dimension picked by the sensor fit spans the image's width (horizontal
fit) or its height (vertical fit); with AUTO the larger of ``width * pixel_aspect_x`` and
``height * pixel_aspect_y`` wins. Shifts are fractions of that fitted dimension. Non-square
pixels make ``fy = fx * pixel_aspect_x / pixel_aspect_y``.

Every function takes plain numbers or array-likes (a mathutils Matrix works) and returns
numpy arrays: no bpy here. The add-on reads a Blender camera's settings and calls
:func:`intrinsics_matrix` and :func:`world_to_camera_matrix`
(``blender_addon.core.camera_intrinsics.camera_from_blender``); the way back, a scenario
camera -> Blender settings (``blender_addon.core.camera_intrinsics.blender_camera_settings``),
used by scenario and recording imports, is
:func:`camera_matrix_world_from` and :func:`lens_from_intrinsics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

SensorFit = Literal["AUTO", "HORIZONTAL", "VERTICAL"]

# Blender camera axes (x right, y up, looking down -z) -> OpenCV (x right, y down, z forward).
BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
# A 3x3 matrix is a rotation when max |R^T R - I| is at most this and det > 0: a camera's
# normalised world matrix (else it has shear) and a scenario's world_to_camera alike.
ROTATION_TOLERANCE = 1e-4


class CameraConversionError(ValueError):
    """The camera cannot be expressed as a scenario pinhole camera."""


@dataclass(frozen=True)
class PinholeCamera:
    """A scenario camera. ``K`` ``[3, 3]`` pixels; ``world_to_camera`` ``[4, 4]`` OpenCV axes."""

    width: int
    height: int
    K: np.ndarray
    world_to_camera: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """The ``frames[i].camera`` block of a scenario."""
        return {
            "width": self.width,
            "height": self.height,
            "K": self.K.tolist(),
            "world_to_camera": self.world_to_camera.tolist(),
        }

    @property
    def center(self) -> np.ndarray:
        """``[3]`` float64 position of the camera in world coordinates (-R^T t)."""
        rotation, translation = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -rotation.T @ translation


def render_size(resolution_x: int, resolution_y: int,
                resolution_percentage: int) -> tuple[int, int]:
    """The rendered image size in pixels, as Blender computes it (integer division)."""
    width = resolution_x * resolution_percentage // 100
    height = resolution_y * resolution_percentage // 100
    if width < 1 or height < 1:
        raise CameraConversionError(
            f"render size {resolution_x} x {resolution_y} at {resolution_percentage}% "
            "is empty")
    return width, height


def resolve_sensor_fit(sensor_fit: str, width: int, height: int,
                       pixel_aspect_x: float, pixel_aspect_y: float) -> str:
    """AUTO -> HORIZONTAL or VERTICAL: the larger physical image dimension wins
    (ties: horizontal)."""
    if sensor_fit == "AUTO":
        return "HORIZONTAL" if width * pixel_aspect_x >= height * pixel_aspect_y else "VERTICAL"
    if sensor_fit not in ("HORIZONTAL", "VERTICAL"):
        raise CameraConversionError(f"unknown sensor fit {sensor_fit!r}")
    return sensor_fit


def intrinsics_matrix(*, lens: float, sensor_width: float, sensor_height: float,
                      sensor_fit: SensorFit, shift_x: float, shift_y: float,
                      width: int, height: int,
                      pixel_aspect_x: float = 1.0, pixel_aspect_y: float = 1.0) -> np.ndarray:
    """Pinhole intrinsics ``K`` ``[3, 3]`` of a perspective Blender camera.

    Args:
        lens: focal length in mm.
        sensor_width, sensor_height: sensor size in mm (AUTO fit uses ``sensor_width``
            for the larger image dimension, as Blender does).
        sensor_fit: 'AUTO', 'HORIZONTAL' or 'VERTICAL'.
        shift_x, shift_y: lens shift in units of the fitted sensor dimension.
        width, height: rendered image size in pixels (percentage already applied).
        pixel_aspect_x, pixel_aspect_y: the render's pixel aspect ratio.
    """
    if lens <= 0:
        raise CameraConversionError(f"focal length must be positive, got {lens} mm")
    if pixel_aspect_x <= 0 or pixel_aspect_y <= 0:
        raise CameraConversionError(
            f"pixel aspect must be positive, got {pixel_aspect_x} x {pixel_aspect_y}")
    fit = resolve_sensor_fit(sensor_fit, width, height, pixel_aspect_x, pixel_aspect_y)
    # Blender measures the fitted dimension with sensor_height only for an explicit
    # VERTICAL fit; AUTO always uses sensor_width, whichever dimension it fits.
    sensor = sensor_height if sensor_fit == "VERTICAL" else sensor_width
    if sensor <= 0:
        raise CameraConversionError(f"sensor size must be positive, got {sensor} mm")
    y_per_x = pixel_aspect_y / pixel_aspect_x  # Blender's "ycor"
    # Pixels spanned by the fitted sensor dimension, measured in x-pixel units.
    view_pixels = width if fit == "HORIZONTAL" else y_per_x * height
    fx = view_pixels * lens / sensor
    fy = fx / y_per_x
    cx = 0.5 * width - shift_x * view_pixels
    cy = 0.5 * height + shift_y * view_pixels / y_per_x
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def rotation_defect(rot: np.ndarray) -> tuple[float, float]:
    """``(max |R^T R - I|, det R)`` of a ``[3, 3]`` matrix: a rotation has
    ``(<= ROTATION_TOLERANCE, > 0)``."""
    return float(np.abs(rot.T @ rot - np.eye(3)).max()), float(np.linalg.det(rot))


def world_to_camera_matrix(camera_matrix_world: Any) -> np.ndarray:
    """``inv(normalized(matrix_world) @ diag(1, -1, -1, 1))`` ``[4, 4]`` (OpenCV axes).

    ``camera_matrix_world``: the camera object's ``[4, 4]`` world matrix (any
    array-like, e.g. a mathutils Matrix). Object scale is normalised away; shear
    (a non-uniformly scaled, rotated parent) cannot be and is refused.
    """
    m = np.array(camera_matrix_world, dtype=np.float64).reshape(4, 4)
    rot = m[:3, :3]
    norms = np.linalg.norm(rot, axis=0)
    if not np.all(norms > 1e-12):
        raise CameraConversionError("the camera's world matrix has a zero scale")
    rot = rot / norms
    err, det = rotation_defect(rot)
    if err > ROTATION_TOLERANCE or det <= 0:
        raise CameraConversionError(
            "the camera's world matrix has shear or a mirror (e.g. a parent with "
            f"non-uniform scale): max |R^T R - I| = {err:.3g}")
    cam_to_world = np.eye(4)
    cam_to_world[:3, :3] = rot
    cam_to_world[:3, 3] = m[:3, 3]
    cam_to_world = cam_to_world @ BLENDER_TO_OPENCV_CAMERA
    # Rigid inverse: exact and cheaper than a general inverse.
    r, t = cam_to_world[:3, :3], cam_to_world[:3, 3]
    out = np.eye(4)
    out[:3, :3] = r.T
    out[:3, 3] = -r.T @ t
    return out


def camera_matrix_world_from(world_to_camera: Any) -> np.ndarray:
    """The inverse of :func:`world_to_camera_matrix`: a Blender camera's ``matrix_world``
    ``[4, 4]`` (unscaled) from an OpenCV ``world_to_camera`` ``[4, 4]``."""
    w2c = np.asarray(world_to_camera, dtype=np.float64).reshape(4, 4)
    # diag(1, -1, -1, 1) is its own inverse.
    return np.linalg.inv(w2c) @ BLENDER_TO_OPENCV_CAMERA


def lens_from_intrinsics(K: Any, width: int, height: int,
                         sensor_width: float = 36.0) -> dict[str, float]:
    """The inverse of :func:`intrinsics_matrix` for square pixels and a HORIZONTAL sensor
    fit of ``sensor_width`` mm: ``lens`` (mm), ``shift_x`` and ``shift_y`` (fractions of
    the image width) of a camera rendering ``width`` x ``height`` with intrinsics ``K``.

    Raises:
        CameraConversionError: ``K`` has non-square pixels, skew or a bad focal length.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    if not fx > 0 or abs(fx - fy) > 1e-9 * fx or abs(K[0, 1]) > 1e-12:
        raise CameraConversionError("only positive focal lengths with square pixels and no "
                                    f"skew are supported (fx={fx}, fy={fy}, skew={K[0, 1]})")
    return {"lens": fx * sensor_width / width,
            "shift_x": (0.5 * width - cx) / width,
            "shift_y": (cy - 0.5 * height) / width}
