"""The add-on's pure code under numpy 2 (this venv), with every warning an error.

Blender 4.2-5.0 ship numpy 1.26 (the Blender-side tests run there); later Blender
releases may ship numpy 2. What the add-on runs without bpy (``gs_contract.splats``, which
reads its splat files, the camera conversion, the scenario builder) is exercised here and
checked against independent oracles: gsplat's exporter inputs and the backend's scenario
validation.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gsplat.exporter import export_splats

from gs_contract.camera import (
    CameraConversionError,
    PinholeCamera,
    intrinsics_matrix,
    world_to_camera_matrix,
)
from gs_contract.scenario import load_scenario
from tests.io_helpers import random_export_params

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gsds_addon_pure"  # blender_addon's folder, without its bpy-importing __init__


def addon_module(name: str):
    """``blender_addon.<name>`` loaded without running the package ``__init__``."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_loader(PACKAGE, loader=None, is_package=True)
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(ROOT / "blender_addon")]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture(autouse=True)
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_this_venv_has_numpy_2():
    assert int(np.__version__.split(".")[0]) >= 2


@pytest.mark.parametrize("file_format, name, degree", [
    ("ply", "inria.ply", 3), ("ply_compressed", "compressed.ply", 1),
    ("splat", "s.splat", 0), ("spz", "v4.spz", 2), ("spz3", "v3.spz", 1)])
def test_splat_reader_under_numpy_2(tmp_path, file_format, name, degree):
    from gs_contract.splats import read_splat_file, usable_rows
    from tests.spz_encoder import random_content, spz_bytes

    path = tmp_path / name
    params = random_export_params(500, degree, seed=degree)
    if file_format.startswith("spz"):
        version = 3 if file_format == "spz3" else 4
        path.write_bytes(spz_bytes(random_content(500, degree, seed=1), version=version))
    else:
        export_splats(**params, format=file_format, save_to=str(path))
    full = read_splat_file(path)
    dc = read_splat_file(path, dc_only=True)
    assert full.sh_degree == dc.sh_degree == degree and full.count > 400
    assert usable_rows(full).all()
    np.testing.assert_array_equal(dc.sh[:, 0], full.sh[:, 0])
    np.testing.assert_array_equal(dc.means, full.means)
    if file_format == "ply":  # stored exactly: the exporter's inputs are the oracle
        np.testing.assert_array_equal(full.means, params["means"].numpy())
        np.testing.assert_array_equal(full.quats, params["quats"].numpy())
        np.testing.assert_array_equal(full.sh[:, 1:], params["shN"].numpy())
        np.testing.assert_allclose(full.scales, np.exp(params["scales"].double().numpy()),
                                   rtol=2**-23)


def test_built_scenario_passes_the_backends_validation(tmp_path):
    builder = addon_module("core.scenario_builder")
    for name, seed in (("bed", 0), ("tool", 1)):
        params = random_export_params(50, 1, seed=seed)
        export_splats(**params, format="ply", save_to=str(tmp_path / f"{name}.ply"))
    K = intrinsics_matrix(lens=35.0, sensor_width=36.0, sensor_height=24.0, sensor_fit="AUTO",
                          shift_x=0.1, shift_y=-0.05, width=64, height=48)
    camera_world = np.eye(4)
    camera_world[:3, 3] = [0.0, 0.0, 5.0]  # looking down -z at the origin
    w2c = world_to_camera_matrix(camera_world)
    np.testing.assert_allclose(w2c[:3, 3], [0.0, 0.0, 5.0])  # the origin, 5 m ahead
    cameras = [PinholeCamera(64, 48, K, w2c)] * 3
    poses = np.tile(np.eye(4), (3, 2, 1, 1))
    poses[:, 1, :3, :3] *= 2.0  # uniform scale is allowed
    poses[:, 1, 0, 3] = [0.0, 0.5, 1.0]
    visible = np.array([[True, True], [True, False], [True, True]])
    scene = builder.GatheredScene(
        classes=["tool"],
        objects=[builder.GatheredObject("bed", "background", str(tmp_path / "bed.ply")),
                 builder.GatheredObject("tool", "instrument", str(tmp_path / "tool.ply"),
                                        class_name="tool", keep=np.array([0, 3, 7]))],
        frame_numbers=[1, 2, 3], cameras=cameras, poses=poses, visible=visible)
    path = builder.write_scenario(tmp_path / "out" / "scenario.json",
                                  builder.build_scenario(scene, tmp_path / "out"))
    scenario = load_scenario(path)  # the backend's validation: raises on any fault
    assert list(scenario.objects) == ["bed", "tool"]
    assert [sorted(f.poses) for f in scenario.frames] == [["bed", "tool"], ["bed"],
                                                          ["bed", "tool"]]
    raw = json.loads(path.read_text())
    assert raw["assets"]["tool"]["keep"] == [0, 3, 7]
    np.testing.assert_allclose(raw["frames"][0]["camera"]["K"], K)


def test_camera_from_blender_reads_a_camera_object():
    """The add-on's reader of a Blender camera (duck-typed) under numpy 2: a 50 mm lens
    on a 36 mm sensor at 1920 x 1080, 50 %, looking down -z from 5 m up."""
    read = addon_module("core.camera_intrinsics").camera_from_blender
    data = SimpleNamespace(type="PERSP", lens=50.0, sensor_width=36.0, sensor_height=24.0,
                           sensor_fit="AUTO", shift_x=0.0, shift_y=0.0)
    matrix_world = np.eye(4)
    matrix_world[2, 3] = 5.0
    camera_object = SimpleNamespace(name="cam", data=data, matrix_world=matrix_world.tolist())
    render = SimpleNamespace(resolution_x=1920, resolution_y=1080, resolution_percentage=50,
                             pixel_aspect_x=1.0, pixel_aspect_y=1.0)
    camera = read(camera_object, render)
    assert (camera.width, camera.height) == (960, 540)
    np.testing.assert_allclose(camera.K, [[960 * 50 / 36, 0, 480], [0, 960 * 50 / 36, 270],
                                          [0, 0, 1]])
    np.testing.assert_allclose(camera.world_to_camera @ [0, 0, 0, 1], [0, 0, 5, 1])
    data.type = "ORTHO"
    with pytest.raises(CameraConversionError, match=r"camera 'cam'.*perspective"):
        read(camera_object, render)
