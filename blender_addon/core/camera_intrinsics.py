"""A Blender camera object <-> the scenario's pinhole camera.

:func:`camera_from_blender` reads the settings of a camera object (duck-typed: no bpy
import, so this stays a pure module); :func:`blender_camera_settings` goes the other
way, from ``K`` and the image size to the settings a camera and the render need. Both
convert with the one copy of the conventions, :mod:`gs_contract.camera`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gs_contract.camera import (
    CameraConversionError,
    PinholeCamera,
    intrinsics_matrix,
    lens_from_intrinsics,
    render_size,
    world_to_camera_matrix,
)

# Blender's sensor width default (mm); a smaller focal length than Blender's 1 mm minimum
# takes a wider sensor instead.
SENSOR_WIDTH = 36.0
MIN_LENS = 1.0  # mm, Camera.lens hard minimum
MAX_PIXEL_ASPECT = 200.0  # RenderSettings.pixel_aspect_x/y hard maximum (minimum 1)


def camera_from_blender(camera_object: Any, render: Any,
                        matrix_world: Any | None = None) -> PinholeCamera:
    """Convert a Blender camera object and the scene's render settings.

    Args:
        camera_object: a ``bpy.types.Object`` whose ``data`` is a Camera.
        render: ``scene.render`` (resolution, percentage, pixel aspect).
        matrix_world: the camera's ``[4, 4]`` world matrix; defaults to
            ``camera_object.matrix_world`` (evaluated for the current frame).

    Raises:
        CameraConversionError: not a perspective camera, shear, bad sizes; the
            message names the camera.
    """
    cam = camera_object.data
    try:
        if cam.type != "PERSP":
            raise CameraConversionError(
                f"is not a perspective camera (type {cam.type}); only perspective cameras "
                "are supported")
        width, height = render_size(render.resolution_x, render.resolution_y,
                                    render.resolution_percentage)
        K = intrinsics_matrix(
            lens=cam.lens, sensor_width=cam.sensor_width, sensor_height=cam.sensor_height,
            sensor_fit=cam.sensor_fit, shift_x=cam.shift_x, shift_y=cam.shift_y,
            width=width, height=height,
            pixel_aspect_x=render.pixel_aspect_x, pixel_aspect_y=render.pixel_aspect_y)
        w2c = world_to_camera_matrix(
            camera_object.matrix_world if matrix_world is None else matrix_world)
    except CameraConversionError as exc:
        raise CameraConversionError(f"camera {camera_object.name!r}: {exc}") from None
    return PinholeCamera(width, height, K, w2c)


@dataclass(frozen=True)
class BlenderCameraSettings:
    """What a Blender camera (``Camera`` data) and the render need to reproduce a pinhole
    camera: horizontal sensor fit, render resolution ``width`` x ``height`` at 100 %.

    Attributes:
        lens: focal length (mm).
        sensor_width: sensor width (mm), horizontal sensor fit.
        shift_x, shift_y: lens shift, fractions of the image width.
        pixel_aspect_x, pixel_aspect_y: the render's pixel aspect (one of them 1).
    """

    width: int
    height: int
    lens: float
    sensor_width: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float

    def intrinsics(self) -> np.ndarray:
        """``K`` ``[3, 3]`` of a camera with these settings (the forward conversion)."""
        return intrinsics_matrix(
            lens=self.lens, sensor_width=self.sensor_width, sensor_height=self.sensor_width,
            sensor_fit="HORIZONTAL", shift_x=self.shift_x, shift_y=self.shift_y,
            width=self.width, height=self.height,
            pixel_aspect_x=self.pixel_aspect_x, pixel_aspect_y=self.pixel_aspect_y)


def blender_camera_settings(K: Any, width: int, height: int) -> BlenderCameraSettings:
    """The inverse of :func:`camera_from_blender`'s intrinsics: Blender settings whose
    ``K`` (``[3, 3]`` pixels, skew 0) is the given one, for a ``width`` x ``height`` render.

    Non-square pixels (fx != fy) become the render's pixel aspect (``fy = fx * pax / pay``),
    as Blender draws them; the lens shift takes the principal point. The sensor is 36 mm
    wide unless the focal length would fall under Blender's 1 mm minimum.

    Raises:
        CameraConversionError: skew, a non-positive focal length, or a pixel aspect
            beyond Blender's 1:200.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    fx, fy, cy = float(K[0, 0]), float(K[1, 1]), float(K[1, 2])
    if not (fx > 0 and fy > 0):
        raise CameraConversionError(f"focal lengths must be positive (fx={fx}, fy={fy})")
    # Blender: fy = fx / a with a = pay / pax, one of pax, pay being 1.
    a = fx / fy
    pixel_aspect_x, pixel_aspect_y = (1.0, a) if a >= 1.0 else (1.0 / a, 1.0)
    if max(pixel_aspect_x, pixel_aspect_y) > MAX_PIXEL_ASPECT:
        raise CameraConversionError(f"fx / fy = {a:.6g} is beyond Blender's pixel aspect "
                                    f"range (1:{MAX_PIXEL_ASPECT:g})")
    # The square-pixel camera with the same lens and shifts: cy - H/2 scales with a.
    square = K.copy()
    square[1, 1] = fx
    square[1, 2] = 0.5 * height + (cy - 0.5 * height) * a
    sensor_width = max(SENSOR_WIDTH, MIN_LENS * width / fx)
    lens = lens_from_intrinsics(square, width, height, sensor_width)
    return BlenderCameraSettings(width, height, lens["lens"], sensor_width, lens["shift_x"],
                                 lens["shift_y"], pixel_aspect_x, pixel_aspect_y)
