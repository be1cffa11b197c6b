"""Blender camera -> scenario camera (DESIGN contract 2), checked against Blender itself.

The pure conversions (gs_contract.camera) are also tested without Blender, under numpy 2,
in tests/test_contract_camera.py.

Oracle: ``bpy_extras.object_utils.world_to_camera_view`` (normalised x right, y up from
the bottom-left corner), converted to pixels as u = x * W, v = (1 - y) * H.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector

from blender_addon.core.camera_intrinsics import camera_from_blender
from gs_contract.camera import CameraConversionError, world_to_camera_matrix
from tests.pinhole import project_points

TOLERANCE_PX = 0.01


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    data = bpy.data.cameras.new("camera")
    cam = bpy.data.objects.new("camera", data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.location = (0.3, -2.0, 0.7)
    cam.rotation_euler = (1.3, 0.1, 0.2)
    return scene


def points_in_view(cam, rng, n=40):
    """World points in front of the camera, spread over and a bit beyond the frame."""
    m = cam.matrix_world.normalized()
    pts = []
    for _ in range(n):
        depth = rng.uniform(0.5, 6.0)
        local = Vector((rng.uniform(-0.8, 0.8) * depth, rng.uniform(-0.8, 0.8) * depth, -depth))
        pts.append(m @ local)
    return pts


def assert_projection_parity(scene, rng, n=40):
    cam = scene.camera
    bpy.context.view_layer.update()
    camera = camera_from_blender(cam, scene.render)
    pts = points_in_view(cam, rng, n)
    ours = project_points(camera, np.array([tuple(p) for p in pts]))
    ndc = [world_to_camera_view(scene, cam, p) for p in pts]
    theirs = np.array([(q.x * camera.width, (1.0 - q.y) * camera.height) for q in ndc])
    err = np.abs(ours - theirs).max()
    assert err <= TOLERANCE_PX, f"max projection difference {err:.4g} px"
    return camera


CASES = {
    # name: (resolution x, y, percentage, pixel aspect x, y, sensor fit, shift x, y)
    "auto_landscape": (640, 480, 100, 1.0, 1.0, 'AUTO', 0.0, 0.0),
    "auto_portrait": (480, 640, 100, 1.0, 1.0, 'AUTO', 0.0, 0.0),
    "horizontal_portrait": (300, 500, 100, 1.0, 1.0, 'HORIZONTAL', 0.0, 0.0),
    "vertical_landscape": (800, 450, 100, 1.0, 1.0, 'VERTICAL', 0.0, 0.0),
    "shift": (640, 480, 100, 1.0, 1.0, 'AUTO', 0.17, -0.23),
    "shift_portrait_vertical": (360, 640, 100, 1.0, 1.0, 'VERTICAL', -0.1, 0.3),
    "pixel_aspect_wide": (640, 480, 100, 2.0, 1.0, 'AUTO', 0.05, 0.1),
    "pixel_aspect_tall": (640, 480, 100, 1.0, 1.5, 'AUTO', -0.2, 0.0),
    # AUTO with non-square pixels: 400 * 1 < 300 * 2, so the vertical dimension fits.
    "pixel_aspect_flips_auto_fit": (400, 300, 100, 1.0, 2.0, 'AUTO', 0.1, 0.1),
    "pixel_aspect_horizontal": (500, 400, 100, 1.3, 1.0, 'HORIZONTAL', 0.0, 0.2),
    "percentage_50": (1280, 720, 50, 1.0, 1.0, 'AUTO', 0.1, 0.0),
    "percentage_150_aspect": (400, 300, 150, 1.5, 1.0, 'VERTICAL', 0.0, -0.1),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_projection_matches_blender(scene, case):
    rx, ry, pct, ax, ay, fit, sx, sy = CASES[case]
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = rx, ry, pct
    r.pixel_aspect_x, r.pixel_aspect_y = ax, ay
    cam = scene.camera.data
    cam.sensor_fit, cam.shift_x, cam.shift_y = fit, sx, sy
    cam.lens, cam.sensor_width, cam.sensor_height = 35.0, 32.0, 18.0
    camera = assert_projection_parity(scene, np.random.default_rng(len(case)))
    assert (camera.width, camera.height) == (rx * pct // 100, ry * pct // 100)


def test_scaled_rotated_parented_camera(scene):
    """Object scale on the camera and its parents is normalised away, as Blender does."""
    parent = bpy.data.objects.new("rig", None)
    scene.collection.objects.link(parent)
    parent.location = (1.0, 2.0, -0.5)
    parent.rotation_euler = (0.3, -0.7, 1.1)
    parent.scale = (2.5, 2.5, 2.5)
    cam = scene.camera
    cam.parent = parent
    cam.scale = (0.5, 3.0, 1.7)  # non-uniform on the camera itself: only its own axes
    cam.data.sensor_fit = 'AUTO'
    cam.data.shift_x = 0.05
    scene.render.resolution_x, scene.render.resolution_y = 320, 240
    camera = assert_projection_parity(scene, np.random.default_rng(7))
    rot = camera.world_to_camera[:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(rot) == pytest.approx(1.0, abs=1e-6)


def test_random_cameras(scene):
    """Many random lenses, sensors, fits, shifts, aspects and transforms."""
    rng = np.random.default_rng(3)
    cam = scene.camera
    for _ in range(25):
        d = cam.data
        d.lens = rng.uniform(12, 120)
        d.sensor_width, d.sensor_height = rng.uniform(8, 40), rng.uniform(8, 40)
        d.sensor_fit = str(rng.choice(['AUTO', 'HORIZONTAL', 'VERTICAL']))
        d.shift_x, d.shift_y = rng.uniform(-0.4, 0.4, 2)
        r = scene.render
        r.resolution_x, r.resolution_y = (int(v) for v in rng.integers(32, 900, 2))
        r.resolution_percentage = int(rng.choice([25, 50, 100, 200]))
        r.resolution_x -= r.resolution_x % 4
        r.resolution_y -= r.resolution_y % 4
        r.pixel_aspect_x, r.pixel_aspect_y = rng.uniform(1, 2.5, 2)
        cam.location = rng.normal(size=3)
        cam.rotation_euler = rng.uniform(-math.pi, math.pi, 3)
        cam.scale = rng.uniform(0.3, 3.0, 3)
        assert_projection_parity(scene, rng, n=10)


def test_world_to_camera_axes():
    """Blender camera looking down -z with y up -> OpenCV z forward, y down."""
    w2c = world_to_camera_matrix(Matrix.Translation((0, 0, 5)) @ Matrix.Scale(3.0, 4))
    point_ahead = w2c @ np.array([0.0, 1.0, 0.0, 1.0])  # 5 in front, above the axis
    np.testing.assert_allclose(point_ahead[:3], [0.0, -1.0, 5.0], atol=1e-12)


def test_non_perspective_cameras_are_refused(scene):
    for kind in ('ORTHO', 'PANO'):
        scene.camera.data.type = kind
        with pytest.raises(CameraConversionError, match=r"camera 'camera'.*perspective"):
            camera_from_blender(scene.camera, scene.render)


def test_sheared_camera_is_refused(scene):
    parent = bpy.data.objects.new("squash", None)
    scene.collection.objects.link(parent)
    parent.scale = (1.0, 3.0, 1.0)
    scene.camera.parent = parent
    scene.camera.rotation_euler = (0.7, 0.4, 0.0)
    bpy.context.view_layer.update()
    with pytest.raises(CameraConversionError, match="shear"):
        camera_from_blender(scene.camera, scene.render)
