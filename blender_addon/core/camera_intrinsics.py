"""A Blender camera object -> the scenario's pinhole camera.

Reads the settings of a camera object (duck-typed: no bpy import, so this stays a pure
module) and converts them with the one copy of the conventions, :mod:`gs_contract.camera`.
"""

from __future__ import annotations

from typing import Any

from gs_contract.camera import (
    CameraConversionError,
    PinholeCamera,
    intrinsics_matrix,
    render_size,
    world_to_camera_matrix,
)


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
