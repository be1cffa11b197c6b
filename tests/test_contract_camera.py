"""gs_contract.camera in the backend venv (numpy 2), without Blender.

The parity with Blender itself (``world_to_camera_view``, 0.01 px) is tested in
tests/blender/test_camera_export.py under Blender's numpy 1.26. Here: the same conversions
under numpy 2 with every warning an error, against an independent derivation (the image
frame of a camera in Blender's sensor geometry: at a distance of ``lens`` mm in front of
the camera the frame is the sensor, shifted by ``shift * sensor``), the way back as an
inverse, and the refusals.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gs_contract.camera import (
    CameraConversionError,
    PinholeCamera,
    camera_matrix_world_from,
    intrinsics_matrix,
    lens_from_intrinsics,
    render_size,
    resolve_sensor_fit,
    world_to_camera_matrix,
)
from tests.pinhole import project_points


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation ``[3, 3]`` (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def frame_corners_blender(lens: float, sensor: float, fit: str, shift_x: float,
                          shift_y: float, width: int, height: int) -> np.ndarray:
    """The image's corners ``[4, 3]`` in Blender camera coordinates (y up, looking down
    -z), square pixels: top-left, top-right, bottom-right, bottom-left, at z = -lens."""
    if fit == "HORIZONTAL":
        half_w, half_h = sensor / 2, sensor * height / width / 2
    else:
        half_w, half_h = sensor * width / height / 2, sensor / 2
    cx, cy = shift_x * sensor, shift_y * sensor
    return np.array([[cx - half_w, cy + half_h, -lens], [cx + half_w, cy + half_h, -lens],
                     [cx + half_w, cy - half_h, -lens], [cx - half_w, cy - half_h, -lens]])


@pytest.mark.parametrize("fit, width, height, shift", [
    ("HORIZONTAL", 640, 480, (0.0, 0.0)), ("HORIZONTAL", 300, 500, (0.12, -0.07)),
    ("VERTICAL", 800, 450, (-0.2, 0.15)), ("AUTO", 640, 480, (0.1, 0.1)),
    ("AUTO", 480, 640, (0.0, -0.3))])
def test_image_corners_land_on_the_frame_corners(fit, width, height, shift):
    """A rotated, translated, scaled camera: the sensor frame's corners project to the
    image corners (0, 0), (W, 0), (W, H), (0, H): pixel edges, not pixel centres."""
    rng = np.random.default_rng(width + height)
    lens, sensor_width, sensor_height = 35.0, 32.0, 18.0
    # AUTO fits the larger dimension and measures it with sensor_width, as Blender does.
    resolved = resolve_sensor_fit(fit, width, height, 1.0, 1.0)
    sensor = sensor_height if fit == "VERTICAL" else sensor_width
    K = intrinsics_matrix(lens=lens, sensor_width=sensor_width, sensor_height=sensor_height,
                          sensor_fit=fit, shift_x=shift[0], shift_y=shift[1],
                          width=width, height=height)
    matrix_world = np.eye(4)
    matrix_world[:3, :3] = random_rotation(rng) * 2.5  # object scale is normalised away
    matrix_world[:3, 3] = rng.normal(size=3)
    camera = PinholeCamera(width, height, K, world_to_camera_matrix(matrix_world))
    corners = frame_corners_blender(lens, sensor, resolved, *shift, width, height)
    depth = rng.uniform(0.5, 3.0)  # any point on the ray through a corner will do
    rot, origin = matrix_world[:3, :3] / 2.5, matrix_world[:3, 3]
    world = (corners * depth) @ rot.T + origin
    np.testing.assert_allclose(project_points(camera, world),
                               [[0, 0], [width, 0], [width, height], [0, height]],
                               atol=1e-9 * width)


def test_pixel_centre_convention():
    """A point on the optical axis lands on the image centre, measured from the top-left
    corner of the top-left pixel (pixel centres at +0.5)."""
    K = intrinsics_matrix(lens=50.0, sensor_width=36.0, sensor_height=24.0, sensor_fit='AUTO',
                          shift_x=0.0, shift_y=0.0, width=1920, height=1080)
    np.testing.assert_allclose(K, [[1920 * 50 / 36, 0, 960], [0, 1920 * 50 / 36, 540],
                                   [0, 0, 1]])
    shifted = intrinsics_matrix(lens=50.0, sensor_width=36.0, sensor_height=24.0,
                                sensor_fit='AUTO', shift_x=0.1, shift_y=0.1,
                                width=1920, height=1080)
    # Shift moves the frame, in units of the fitted (larger) dimension: the principal
    # point moves left and down by 0.1 * 1920 px.
    assert shifted[0, 2] == pytest.approx(960 - 192)
    assert shifted[1, 2] == pytest.approx(540 + 192)
    assert render_size(1921, 1081, 50) == (960, 540)


def test_non_square_pixels_scale_fy():
    K = intrinsics_matrix(lens=50.0, sensor_width=36.0, sensor_height=24.0,
                          sensor_fit='HORIZONTAL', shift_x=0.0, shift_y=0.0,
                          width=640, height=480, pixel_aspect_x=2.0, pixel_aspect_y=1.0)
    assert K[1, 1] == pytest.approx(K[0, 0] * 2.0)


def test_the_way_back_inverts_the_conversion():
    """Scenario camera -> Blender settings (scenario_to_blend.py) -> scenario camera."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        width, height = int(rng.integers(32, 2000)), int(rng.integers(32, 2000))
        f = rng.uniform(0.3, 3.0) * width
        K = np.array([[f, 0, rng.uniform(0.2, 0.8) * width],
                      [0, f, rng.uniform(0.2, 0.8) * height], [0, 0, 1]])
        lens = lens_from_intrinsics(K, width, height)
        back = intrinsics_matrix(sensor_width=36.0, sensor_height=24.0, sensor_fit="HORIZONTAL",
                                 width=width, height=height, **lens)
        np.testing.assert_allclose(back, K, rtol=1e-12, atol=1e-9)
        w2c = np.eye(4)
        w2c[:3, :3] = random_rotation(rng)
        w2c[:3, 3] = rng.normal(size=3)
        np.testing.assert_allclose(world_to_camera_matrix(camera_matrix_world_from(w2c)), w2c,
                                   atol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda: lens_from_intrinsics([[100, 0, 5], [0, 120, 5], [0, 0, 1]], 10, 10),
     "square pixels"),
    (lambda: render_size(1, 1, 50), "empty"),
    (lambda: resolve_sensor_fit("DIAGONAL", 4, 3, 1.0, 1.0), "unknown sensor fit"),
    (lambda: intrinsics_matrix(lens=0.0, sensor_width=36.0, sensor_height=24.0,
                               sensor_fit="AUTO", shift_x=0.0, shift_y=0.0, width=4, height=3),
     "focal length"),
    (lambda: intrinsics_matrix(lens=50.0, sensor_width=36.0, sensor_height=0.0,
                               sensor_fit="VERTICAL", shift_x=0.0, shift_y=0.0,
                               width=4, height=3),
     "sensor size"),
    (lambda: world_to_camera_matrix(np.diag([1.0, 0.0, 1.0, 1.0])), "zero scale"),
    (lambda: world_to_camera_matrix(np.diag([1.0, -1.0, 1.0, 1.0])), "mirror"),
    (lambda: world_to_camera_matrix([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                     [0, 0, 0, 1]]), "shear"),
])
def test_refusals_say_what_is_wrong(call, match):
    with pytest.raises(CameraConversionError, match=match):
        call()


def test_to_json_is_the_scenario_camera_block():
    K = np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]])
    block = PinholeCamera(8, 6, K, np.eye(4)).to_json()
    assert block == {"width": 8, "height": 6, "K": K.tolist(),
                     "world_to_camera": np.eye(4).tolist()}


def test_center_is_where_the_camera_frame_has_its_origin():
    """The centre maps to the camera-frame origin, and is the translation of Blender's
    camera matrix (the way back)."""
    rng = np.random.default_rng(3)
    for _ in range(10):
        q = rng.normal(size=4)
        w, x, y, z = q / np.linalg.norm(q)
        rotation = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                             [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                             [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = rotation, rng.normal(size=3) * 5
        camera = PinholeCamera(8, 6, np.eye(3), w2c)
        assert np.allclose(w2c @ np.append(camera.center, 1.0), [0, 0, 0, 1], atol=1e-12)
        assert np.allclose(camera_matrix_world_from(w2c)[:3, 3], camera.center, atol=1e-12)
