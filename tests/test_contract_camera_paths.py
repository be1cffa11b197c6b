"""gs_contract.camera_paths: COLMAP (text, binary) and nerfstudio readers.

Models are written by pycolmap (an independent writer) from a known camera set, and
pycolmap's own reader and projection are the oracles; transforms.json files are made by
nerfstudio's recipe (tests/camera_path_helpers.py). Bad files are written by hand or by
cutting pycolmap's output.
"""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from gs_contract.camera_paths import (
    find_colmap_model,
    name_filter,
    read_colmap_model,
    read_transforms_json,
)
from gs_contract.errors import InputError
from tests.camera_path_helpers import (
    NERFSTUDIO_APPLIED,
    known_cameras,
    project,
    rodrigues,
    write_colmap,
    write_transforms,
)

pycolmap = pytest.importorskip("pycolmap")

CAMERAS = known_cameras()
BY_NAME = {c.name: c for c in CAMERAS}


def _assert_known(images, cameras=CAMERAS, atol=1e-12, folder=""):
    assert [i.name for i in images] == sorted(folder + c.name for c in cameras)
    for image in images:
        cam = BY_NAME[image.name.removeprefix(folder)]
        assert (image.width, image.height) == (cam.width, cam.height)
        np.testing.assert_allclose(image.K, cam.K, atol=atol)
        np.testing.assert_allclose(image.world_to_camera, cam.world_to_camera, atol=atol)


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_colmap_round_trip(tmp_path, text):
    folder = write_colmap(tmp_path / "model", CAMERAS, text=text)
    images = read_colmap_model(folder)
    _assert_known(images)
    assert [i.frame_name for i in images] == ["view_a", "view_b", "view_c", "view_d", "view_e"]
    assert {i.name: i.camera_model for i in images} == {c.name: c.model for c in CAMERAS}
    assert all(i.dropped_distortion == {} for i in images)


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_colmap_matches_pycolmap_reader_and_projection(tmp_path, text):
    folder = write_colmap(tmp_path / "model", CAMERAS, text=text)
    rec = pycolmap.Reconstruction(str(folder))
    ours = {i.name: i for i in read_colmap_model(folder)}
    rng = np.random.default_rng(3)
    for image in rec.images.values():
        mine = ours[image.name]
        np.testing.assert_allclose(mine.world_to_camera[:3], image.cam_from_world().matrix(),
                                   atol=1e-12)
        np.testing.assert_allclose(mine.K, image.camera.calibration_matrix(), atol=1e-12)
        for _ in range(5):  # a point in front of the camera
            in_camera = np.array([*rng.uniform(-0.5, 0.5, 2), 1.0]) * rng.uniform(1, 9)
            world = np.linalg.solve(mine.world_to_camera, [*in_camera, 1.0])[:3]
            expected = image.project_point(world)
            np.testing.assert_allclose(project(mine.K, mine.world_to_camera, world), expected,
                                       atol=1e-7)


def test_hand_written_text_model_low_precision(tmp_path):
    """Six significant digits (hand-written, old exports): read as pycolmap reads it."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "cameras.txt").write_text(
        "# Camera list\n1 SIMPLE_PINHOLE 3072 2304 2559.81 1536 1152\n"
        "2 PINHOLE 3072 2304 2560.56 2560.56 1536 1152\n")
    (folder / "images.txt").write_text(
        "# Image list\n"
        "1 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 1 P1180141.JPG\n"
        "2362.39 248.498 -1 1784.7 268.254 -1 1784.7 268.254 -1\n"
        "2 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 2 P1180142.JPG\n"
        "\n")
    (folder / "points3D.txt").write_text("")  # pycolmap wants one
    rec = pycolmap.Reconstruction(str(folder))
    ours = {i.name: i for i in read_colmap_model(folder)}
    for image in rec.images.values():
        np.testing.assert_allclose(ours[image.name].world_to_camera[:3],
                                   image.cam_from_world().matrix(), atol=1e-12)
        np.testing.assert_allclose(ours[image.name].K, image.camera.calibration_matrix())


def test_binary_wins_and_workspace_layouts(tmp_path):
    write_colmap(tmp_path / "ws" / "sparse" / "0", CAMERAS, text=False)
    write_colmap(tmp_path / "ws" / "sparse" / "0", CAMERAS[:2], text=True)
    assert find_colmap_model(tmp_path / "ws") == (tmp_path / "ws" / "sparse" / "0", "binary")
    assert find_colmap_model(tmp_path / "ws" / "sparse") == (tmp_path / "ws/sparse/0", "binary")
    assert len(read_colmap_model(tmp_path / "ws" / "sparse" / "0")) == len(CAMERAS)
    assert len(read_colmap_model(tmp_path / "ws" / "sparse" / "0", "text")) == 2
    assert find_colmap_model(tmp_path) is None


def test_image_filter_by_name_or_file_name(tmp_path):
    folder = write_colmap(tmp_path / "m", CAMERAS, text=False)
    assert [i.name for i in read_colmap_model(folder, image_filter=name_filter("*.jpg"))] == \
        ["view_e.jpg"]
    keep = name_filter("view_[ab].png")
    assert keep("images/view_a.png") and keep("view_b.png") and not keep("view_c.png")


def _distorted(tmp_path, model, params, text=True):
    cam = CAMERAS[0]
    K = cam.K
    cams = [type(cam)(cam.name, model, params, cam.width, cam.height, K, cam.world_to_camera)]
    return write_colmap(tmp_path / model, cams, text=text)


@pytest.mark.parametrize("model, params, dropped", [
    ("SIMPLE_RADIAL", (510.0, 320.5, 239.25, -0.02), {"k": -0.02}),
    ("RADIAL", (510.0, 320.5, 239.25, 0.01, -0.003), {"k1": 0.01, "k2": -0.003}),
    ("OPENCV", (510.0, 490.0, 320.5, 239.25, 0.01, 0.0, 0.001, 0.0), {"k1": 0.01, "p1": 0.001}),
])
def test_distortion_refused_unless_ignored(tmp_path, model, params, dropped):
    folder = _distorted(tmp_path, model, params)
    with pytest.raises(InputError) as info:
        read_colmap_model(folder)
    assert info.value.source.endswith("cameras.txt") and "line 4" in info.value.field
    assert model in info.value.problem and "--ignore-distortion" in info.value.problem
    (image,) = read_colmap_model(folder, ignore_distortion=True)
    assert image.dropped_distortion == dropped
    fx = params[0]
    fy = params[1] if model == "OPENCV" else fx
    cx, cy = params[-6:-4] if model == "OPENCV" else params[1:3]
    np.testing.assert_allclose(image.K, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_fisheye_refused_even_when_distortion_is_ignored(tmp_path, text):
    folder = _distorted(tmp_path, "OPENCV_FISHEYE", (500.0, 500.0, 320.0, 240.0, 0, 0, 0, 0),
                        text=text)
    with pytest.raises(InputError, match="OPENCV_FISHEYE, not a pinhole"):
        read_colmap_model(folder, ignore_distortion=True)
    # ... but only when an image that is kept uses it
    assert read_colmap_model(folder, image_filter=lambda name: False) == []


# ---------------------------------------------------------------------------
# refusals


def _model(tmp_path, cameras: str, images: str):
    folder = tmp_path / "bad"
    folder.mkdir(exist_ok=True)
    (folder / "cameras.txt").write_text(cameras)
    (folder / "images.txt").write_text(images)
    return folder


GOOD_CAMERA = "1 PINHOLE 64 48 70 70 32 24\n"
GOOD_IMAGE = "1 1 0 0 0 0 0 1 1 a.png\n\n"


@pytest.mark.parametrize("cameras, images, file, field, words", [
    (GOOD_CAMERA, "1 1 0 0 0 0 0 1 7 a.png\n\n", "images.txt", "line 1",
     "uses camera 7, which cameras.txt does not hold"),
    (GOOD_CAMERA, "1 2 0 0 0 0 0 1 1 a.png\n\n", "images.txt", "line 1",
     "is not a rotation (norm 2"),
    (GOOD_CAMERA, "1 0 0 0 0 0 0 1 1 a.png\n\n", "images.txt", "line 1", "not a rotation"),
    (GOOD_CAMERA, "1 1 0 0 0 0 0 1 1\n", "images.txt", "line 1", "got 9 values"),
    (GOOD_CAMERA, "1 1 0 0 0 x 0 1 1 a.png\n\n", "images.txt", "line 1",
     "TX must be a number, got 'x'"),
    (GOOD_CAMERA, "1 1 0 0 0 0 0 1 1 a.png\n2 1 0 0 0 0 0 1 1 b.png\n", "images.txt", "line 2",
     "expected the POINTS2D line of image 'a.png'"),
    (GOOD_CAMERA, GOOD_IMAGE + GOOD_IMAGE, "images.txt", "line 3", "duplicate image id 1"),
    ("1 PINHOLE 64 48 70 70 32\n", GOOD_IMAGE, "cameras.txt", "line 1",
     "PINHOLE takes 4 parameters (fx, fy, cx, cy), got 3"),
    ("1 PINHOLEX 64 48 70 70 32 24\n", GOOD_IMAGE, "cameras.txt", "line 1",
     "unknown camera model 'PINHOLEX'"),
    ("1 PINHOLE 64 0 70 70 32 24\n", GOOD_IMAGE, "cameras.txt", "line 1",
     "image size must be 1 to"),
    ("1 PINHOLE 64 48 -70 70 32 24\n", GOOD_IMAGE, "cameras.txt", "line 1",
     "focal lengths must be positive"),
    ("1 PINHOLE 64 48 70 nan 32 24\n", GOOD_IMAGE, "cameras.txt", "line 1", "must be finite"),
    (GOOD_CAMERA + GOOD_CAMERA, GOOD_IMAGE, "cameras.txt", "line 2", "duplicate camera id 1"),
])
def test_text_refusals_name_file_and_line(tmp_path, cameras, images, file, field, words):
    folder = _model(tmp_path, cameras, images)
    with pytest.raises(InputError) as info:
        read_colmap_model(folder)
    assert info.value.source == str(folder / file)
    assert info.value.field.startswith(field)
    assert words in info.value.problem


def test_missing_file_is_named(tmp_path):
    folder = write_colmap(tmp_path / "m", CAMERAS, text=True)
    (folder / "cameras.txt").unlink()
    assert find_colmap_model(folder) == (folder, "text")
    with pytest.raises(InputError, match=r"cameras\.txt: file not found"):
        read_colmap_model(folder)


@pytest.mark.parametrize("which", ["cameras.bin", "images.bin"])
def test_truncated_binary_at_every_length(tmp_path, which):
    folder = write_colmap(tmp_path / "m", CAMERAS[:2], text=False)
    data = (folder / which).read_bytes()
    for cut in range(len(data)):
        (folder / which).write_bytes(data[:cut])
        with pytest.raises(InputError) as info:
            read_colmap_model(folder)
        assert info.value.source == str(folder / which)
        assert "file ends early" in info.value.problem, cut
        assert "(byte " in info.value.field


def test_binary_unknown_model_id_and_bad_quaternion(tmp_path):
    folder = write_colmap(tmp_path / "m", CAMERAS[:1], text=False, with_keypoints=False)
    cameras = bytearray((folder / "cameras.bin").read_bytes())
    struct.pack_into("<i", cameras, 8 + 4, 99)
    (folder / "cameras.bin").write_bytes(bytes(cameras))
    with pytest.raises(InputError, match=r"record 1 of 1 \(byte 8\): unknown camera model id"):
        read_colmap_model(folder)
    folder = write_colmap(tmp_path / "m2", CAMERAS[:1], text=False, with_keypoints=False)
    images = bytearray((folder / "images.bin").read_bytes())
    struct.pack_into("<4d", images, 8 + 4, 0.5, 0.5, 0.5, 0.0)
    (folder / "images.bin").write_bytes(bytes(images))
    with pytest.raises(InputError, match=r"image record 1 of 1 \(byte 8\) \(image 'view_c.png'\)"
                                         r": quaternion .* is not a rotation"):
        read_colmap_model(folder)


# ---------------------------------------------------------------------------
# nerfstudio


def test_nerfstudio_file_and_original_worlds(tmp_path):
    path = write_transforms(tmp_path / "transforms.json", CAMERAS)
    original = read_transforms_json(path, world="original")
    _assert_known(original, atol=1e-9, folder="images/")
    in_file = {i.frame_name: i for i in read_transforms_json(path)}
    rng = np.random.default_rng(5)
    for cam in CAMERAS:
        mine = in_file[cam.name.rsplit(".", 1)[0]]
        np.testing.assert_allclose(mine.K, cam.K)
        # the same physical point, in the file's world (applied_transform . p), lands on
        # the same pixel
        for _ in range(5):
            in_camera = np.array([*rng.uniform(-0.4, 0.4, 2), 1.0]) * rng.uniform(1, 5)
            p = np.linalg.solve(cam.world_to_camera, [*in_camera, 1.0])
            np.testing.assert_allclose(
                project(mine.K, mine.world_to_camera, (NERFSTUDIO_APPLIED @ p)[:3]),
                project(cam.K, cam.world_to_camera, p[:3]), atol=1e-7)


def test_nerfstudio_names_sorted_like_nerfstudio(tmp_path):
    path = write_transforms(tmp_path / "transforms.json", CAMERAS)
    images = read_transforms_json(path)
    assert [i.name for i in images] == sorted(f"images/{c.name}" for c in CAMERAS)
    assert images[0].frame_name == "view_a"


def test_nerfstudio_trained_world_lines_up_with_the_trained_points(tmp_path):
    """p_trained = s * D @ p_original (D includes applied_transform, nerfstudio >= 1.0);
    the returned cameras see p_trained where the real cameras see p_original."""
    path = write_transforms(tmp_path / "transforms.json", CAMERAS)
    orient = np.eye(4)
    orient[:3, :3] = rodrigues([0.3, -1.0, 0.4], 0.7)
    orient[:3, 3] = [0.5, -1.5, 2.0]
    D = orient @ NERFSTUDIO_APPLIED
    scale = 0.37
    (tmp_path / "dp.json").write_text(json.dumps({"transform": D[:3].tolist(), "scale": scale}))
    trained = {i.frame_name: i for i in read_transforms_json(
        path, world="trained", dataparser_transforms=tmp_path / "dp.json")}
    rng = np.random.default_rng(7)
    for cam in CAMERAS:
        mine = trained[cam.name.rsplit(".", 1)[0]]
        for _ in range(5):
            in_camera = np.array([*rng.uniform(-0.4, 0.4, 2), 1.0]) * rng.uniform(1, 5)
            p = np.linalg.solve(cam.world_to_camera, [*in_camera, 1.0])
            p_trained = scale * (D @ p)[:3]
            np.testing.assert_allclose(project(mine.K, mine.world_to_camera, p_trained),
                                       project(cam.K, cam.world_to_camera, p[:3]), atol=1e-7)


def test_nerfstudio_global_intrinsics_win_over_the_frames(tmp_path):
    path = write_transforms(tmp_path / "t.json", CAMERAS, per_frame=False)
    data = json.loads(path.read_text())
    data["frames"][2]["fl_x"] = 1.0  # ignored, as nerfstudio ignores it
    path.write_text(json.dumps(data))
    for image in read_transforms_json(path):
        np.testing.assert_allclose(image.K, CAMERAS[0].K)
        assert (image.width, image.height) == (CAMERAS[0].width, CAMERAS[0].height)


def test_nerfstudio_legacy_colmap_folder_applied_transform(tmp_path):
    """No applied_transform but a colmap/sparse/0 beside: nerfstudio's legacy value."""
    legacy = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1.0]])
    path = write_transforms(tmp_path / "transforms.json", CAMERAS, applied=False)
    data = json.loads(path.read_text())
    for frame in data["frames"]:
        frame["transform_matrix"] = (legacy @ np.array(frame["transform_matrix"])).tolist()
    path.write_text(json.dumps(data))
    (tmp_path / "colmap" / "sparse" / "0").mkdir(parents=True)
    _assert_known(read_transforms_json(path, world="original"), atol=1e-9, folder="images/")


@pytest.mark.parametrize("edit, field, words", [
    (lambda d: d["frames"][1].pop("transform_matrix"), "frames[1].transform_matrix",
     "missing required field"),
    (lambda d: d["frames"][0].pop("fl_y"), "frames[0].fl_y", "neither the frame nor"),
    (lambda d: d["frames"][0].update(transform_matrix=[[2, 0, 0, 0], [0, 2, 0, 0],
                                                       [0, 0, 2, 0], [0, 0, 0, 1]]),
     "frames[0].transform_matrix", "must be a rotation"),
    (lambda d: d["frames"][0].update(k1=0.1), "frames[0]", "OPENCV camera with lens distortion"),
    (lambda d: d.update(camera_model="OPENCV_FISHEYE"), "camera_model", "not a pinhole"),
    (lambda d: d["frames"][3].update(w="64"), "frames[3].w", "expected an integer"),
    (lambda d: d.pop("frames"), "frames", "missing required field"),
])
def test_nerfstudio_refusals_name_the_field(tmp_path, edit, field, words):
    path = write_transforms(tmp_path / "t.json", CAMERAS)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        read_transforms_json(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert words in info.value.problem


def test_nerfstudio_distortion_dropped_when_asked(tmp_path):
    path = write_transforms(tmp_path / "t.json", CAMERAS, per_frame=False,
                            extra={"k1": -0.05, "p2": 0.001})
    images = read_transforms_json(path, ignore_distortion=True)
    assert all(i.dropped_distortion == {"k1": -0.05, "p2": 0.001} for i in images)
    with pytest.raises(InputError, match=re.escape("k1=-0.05, p2=0.001")):
        read_transforms_json(path)


def test_bad_dataparser_transforms(tmp_path):
    path = write_transforms(tmp_path / "t.json", CAMERAS)
    (tmp_path / "dp.json").write_text(json.dumps({"transform": np.eye(4)[:3].tolist(),
                                                  "scale": 0}))
    with pytest.raises(InputError, match=r"dp\.json: scale: must be positive"):
        read_transforms_json(path, world="trained", dataparser_transforms=tmp_path / "dp.json")
    with pytest.raises(InputError, match="goes with the trained world"):
        read_transforms_json(path, dataparser_transforms=tmp_path / "dp.json")
