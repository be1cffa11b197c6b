"""The pinhole projection of a scenario camera (DESIGN contract 2), written out for the tests.

The product never projects points in numpy (the rasterizers do it in torch); the camera
tests use this to compare ``K`` and ``world_to_camera`` with Blender's own projection and
with the sensor-frame geometry.
"""

from __future__ import annotations

import numpy as np

from gs_contract.camera import PinholeCamera


def project_points(camera: PinholeCamera, points_world: np.ndarray) -> np.ndarray:
    """Pixel coordinates ``[N, 2]`` (u right, v down, (0, 0) at the top-left corner of the
    top-left pixel) of world points ``[N, 3]``."""
    pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    cam = pts @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3]
    uvw = cam @ camera.K.T
    return uvw[:, :2] / uvw[:, 2:3]
