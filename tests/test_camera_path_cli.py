"""``gs-backend camera-path``: scenarios from COLMAP models and transforms.json files.

Models are written by pycolmap from known cameras; the end-to-end check renders the
resulting scenario and the scenario the cameras came from, and compares the images.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from gs_backend.cli import main
from gs_contract.scenario import load_scenario
from tests.camera_path_helpers import KnownCamera, known_cameras, write_colmap, write_transforms
from tests.scenario_factory import HEIGHT, WIDTH, scenario_dict, write_scenario

pytest.importorskip("pycolmap")


def _cameras_of(scenario: dict) -> list[KnownCamera]:
    """The scenario's frame cameras as COLMAP PINHOLE cameras named <frame>.png."""
    out = []
    for frame in scenario["frames"]:
        cam = frame["camera"]
        K = np.array(cam["K"])
        out.append(KnownCamera(f"{frame['name']}.png", "PINHOLE",
                               (K[0, 0], K[1, 1], K[0, 2], K[1, 2]), cam["width"],
                               cam["height"], K, np.array(cam["world_to_camera"])))
    return out


def _run(*args: str | Path) -> int:
    return main(["camera-path", *map(str, args)])


def _png(folder: Path, frame: str) -> np.ndarray:
    (path,) = folder.glob(f"images/*/{frame}.png")
    return cv2.imread(str(path)).astype(np.int16)


def test_colmap_scenario_renders_the_cameras_it_came_from(tmp_path, capsys):
    original = scenario_dict(3)
    for frame in original["frames"]:  # camera-path poses every frame as the first one
        frame["poses"] = original["frames"][0]["poses"]
    scene = write_scenario(tmp_path / "scene", original)
    model = write_colmap(tmp_path / "capture" / "sparse" / "0", _cameras_of(original),
                         text=False)
    out = tmp_path / "elsewhere" / "replayed.json"
    assert _run(model.parent.parent, "--base", scene, "--out", out, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "colmap-binary" and report["frames"] == 3
    assert any("frame_0001" in note for note in report["notes"])
    written = json.loads(out.read_text())
    assert written["assets"]["tissue"]["ply"] == "../scene/assets/tissue.ply"
    assert [f["name"] for f in written["frames"]] == ["frame_0001", "frame_0002", "frame_0003"]
    for a, b in zip(load_scenario(out).frames, load_scenario(scene).frames, strict=True):
        np.testing.assert_allclose(a.camera.K, b.camera.K, atol=1e-12)
        np.testing.assert_allclose(a.camera.world_to_camera, b.camera.world_to_camera,
                                   atol=1e-12)
        assert a.poses.keys() == b.poses.keys()
    for scenario, folder in ((scene, tmp_path / "r_original"), (out, tmp_path / "r_replayed")):
        assert main(["render", str(scenario), "--out", str(folder), "--progress", "none",
                     "--device", "cpu"]) == 0
    for name in ("frame_0001", "frame_0002", "frame_0003"):
        a, b = _png(tmp_path / "r_original", name), _png(tmp_path / "r_replayed", name)
        assert a.shape == (HEIGHT, WIDTH, 3) and a.std() > 5  # something is in view
        assert np.abs(a - b).max() <= 1


def test_base_without_frames_identity_poses_and_image_subset(tmp_path, capsys):
    base = scenario_dict(1)
    del base["frames"]
    write_scenario(tmp_path / "scene", base)
    base_path = tmp_path / "scene" / "scenario.json"
    model = write_colmap(tmp_path / "model", known_cameras(), text=True)
    out = tmp_path / "scene" / "held_out.json"
    # naming one file of the model selects its folder
    assert _run(model / "images.txt", "--base", base_path, "--out", out,
                "--images", "view_[bd]*") == 0
    assert "wrote 2 frames (view_b .. view_d)" in capsys.readouterr().err
    scenario = load_scenario(out)
    assert [f.name for f in scenario.frames] == ["view_b", "view_d"]
    for frame in scenario.frames:
        assert set(frame.poses) == {"scene", "driver", "grasper"}
        assert all(np.array_equal(m, np.eye(4)) for m in frame.poses.values())
    assert json.loads(out.read_text())["assets"]["tool"]["ply"] == "assets/tool.ply"


def test_nerfstudio_source_with_dataparser_transforms(tmp_path, capsys):
    write_scenario(tmp_path / "scene")
    path = write_transforms(tmp_path / "ns" / "transforms.json", known_cameras())
    dp = tmp_path / "ns" / "dataparser_transforms.json"
    dp.write_text(json.dumps({"transform": np.eye(4)[:3].tolist(), "scale": 0.5}))
    out = tmp_path / "out.json"
    assert _run(path, "--base", tmp_path / "scene" / "scenario.json", "--out", out,
                "--dataparser-transforms", dp, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "nerfstudio" and report["frames"] == 5
    assert any("trained world" in note for note in report["notes"])
    assert len(load_scenario(out).frames) == 5


def test_ignored_distortion_is_reported(tmp_path, capsys):
    write_scenario(tmp_path / "scene")
    cam = known_cameras()[0]
    distorted = KnownCamera(cam.name, "SIMPLE_RADIAL", (500.0, 320.0, 240.0, -0.03),
                            cam.width, cam.height, cam.K, cam.world_to_camera)
    model = write_colmap(tmp_path / "m", [distorted], text=False)
    out = tmp_path / "out.json"
    args = (model, "--base", tmp_path / "scene" / "scenario.json", "--out", out)
    assert _run(*args) == 2
    assert "SIMPLE_RADIAL camera with lens distortion (k=-0.03)" in capsys.readouterr().err
    assert not out.exists()
    assert _run(*args, "--ignore-distortion") == 0
    assert "note: SIMPLE_RADIAL distortion dropped (k=-0.03)" in capsys.readouterr().err


def _missing_cameras(tmp_path):
    model = write_colmap(tmp_path / "m", known_cameras()[:2], text=True)
    (model / "cameras.txt").unlink()
    return model


def _first_image_edited(tmp_path: Path, columns: slice, values: list[str]) -> Path:
    """A text model whose first image line has ``columns`` replaced by ``values``."""
    model = write_colmap(tmp_path / "m", known_cameras()[:2], text=True)
    lines = (model / "images.txt").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    tokens = lines[first].split()
    tokens[columns] = values
    lines[first] = " ".join(tokens)
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    return model


def _unknown_camera_id(tmp_path):
    return _first_image_edited(tmp_path, slice(8, 9), ["42"])


def _bad_quaternion(tmp_path):
    return _first_image_edited(tmp_path, slice(1, 5), ["1", "1", "0", "0"])


def _truncated_binary(tmp_path):
    model = write_colmap(tmp_path / "m", known_cameras()[:2], text=False)
    data = (model / "images.bin").read_bytes()
    (model / "images.bin").write_bytes(data[:-5])
    return model


def _frame_without_matrix(tmp_path):
    path = write_transforms(tmp_path / "ns" / "transforms.json", known_cameras())
    data = json.loads(path.read_text())
    del data["frames"][2]["transform_matrix"]
    path.write_text(json.dumps(data))
    return path


def _same_stems(tmp_path):
    cams = known_cameras()[:2]
    cams[1] = KnownCamera("other/view_c.jpg", *list(cams[1].__dict__.values())[1:])
    return write_colmap(tmp_path / "m", cams, text=False)


def _bad_frame_name(tmp_path):
    cams = known_cameras()[:1]
    cams[0] = KnownCamera("my view.png", *list(cams[0].__dict__.values())[1:])
    return write_colmap(tmp_path / "m", cams, text=False)


@pytest.mark.parametrize("make, extra, words", [
    (_missing_cameras, (), ["cameras.txt", "file not found"]),
    (_unknown_camera_id, (), ["images.txt: line 5", "uses camera 42"]),
    (_bad_quaternion, (), ["images.txt: line 5", "is not a rotation"]),
    (_truncated_binary, (), ["images.bin: image record 2 of 2", "file ends early"]),
    (_frame_without_matrix, (), ["transforms.json: frames[2].transform_matrix",
                                 "missing required field"]),
    (_same_stems, (), ["image 'view_c.png'", "also comes from image 'other/view_c.jpg'"]),
    (_bad_frame_name, (), ["image 'my view.png'", "frame name 'my view' must be"]),
    (lambda t: write_colmap(t / "m", known_cameras(), text=True), ("--images", "nope*"),
     ["no registered image matches --images 'nope*'"]),
    (lambda t: write_colmap(t / "m", known_cameras(), text=True), ("--original-world",),
     ["--original-world: applies to a nerfstudio transforms.json SOURCE only"]),
    (lambda t: t / "nothing", (), ["nothing: not a COLMAP model folder"]),
])
def test_refusals_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, make, extra, words):
    write_scenario(tmp_path / "scene")
    source = make(tmp_path)
    out = tmp_path / "out.json"
    code = _run(source, "--base", tmp_path / "scene" / "scenario.json", "--out", out, *extra)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("gs-backend: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err
    assert not out.exists()


def test_bad_base_is_named_and_out_never_overwrites_the_base(tmp_path, capsys):
    write_scenario(tmp_path / "scene")
    base = tmp_path / "scene" / "scenario.json"
    model = write_colmap(tmp_path / "m", known_cameras(), text=True)
    assert _run(model, "--base", base, "--out", base) == 2
    assert "is an input of this command" in capsys.readouterr().err
    shutil.move(tmp_path / "scene" / "assets" / "tool.ply", tmp_path / "tool.ply")
    assert _run(model, "--base", base, "--out", tmp_path / "o.json") == 2
    err = capsys.readouterr().err
    assert f"{base.resolve()}: assets.tool.ply: file not found" in err
    assert not (tmp_path / "o.json").exists()
