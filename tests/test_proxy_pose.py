"""A proxy's file -> world pose (blender_addon/core/proxy_pose.py), under numpy 2."""

from __future__ import annotations

import numpy as np

from tests.test_addon_numpy2 import addon_module


def test_world_from_file_places_file_points_where_the_mesh_shows_them():
    """The mesh holds file points minus source_origin; the pose of the file's own
    coordinates must put each file point where matrix_world puts its mesh vertex."""
    world_from_file = addon_module("core.proxy_pose").world_from_file
    rng = np.random.default_rng(0)
    matrix_world = np.eye(4)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    matrix_world[:3, :3] = 1.7 * q * np.sign(np.linalg.det(q))
    matrix_world[:3, 3] = rng.normal(size=3)
    origin = rng.normal(size=3)
    file_points = rng.normal(size=(20, 3))
    mesh_points = file_points - origin
    shown = (matrix_world[:3, :3] @ mesh_points.T).T + matrix_world[:3, 3]
    pose = world_from_file(matrix_world, origin)
    assert np.allclose((pose[:3, :3] @ file_points.T).T + pose[:3, 3], shown, atol=1e-12)
    # batched, as the export uses it: [frames, objects, 4, 4] with one origin per object
    batch = world_from_file(np.broadcast_to(matrix_world, (2, 3, 4, 4)),
                            np.broadcast_to(origin, (1, 3, 3)))
    assert np.allclose(batch, pose)
    assert np.array_equal(world_from_file(matrix_world, np.zeros(3)), matrix_world)
