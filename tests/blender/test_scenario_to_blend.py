"""scripts/scenario_to_blend.py: a scenario file becomes an animated scene whose export
gives the same scenario back (how `make demo` builds demo.blend)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from paths import REPO
from ply_factory import write_inria_ply

SCRIPT = REPO / "scripts" / "scenario_to_blend.py"
WIDTH, HEIGHT = 160, 120
K = [[200.0, 0.0, 70.0], [0.0, 200.0, 52.0], [0.0, 0.0, 1.0]]  # off-centre principal point


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues rotation ``[3, 3]`` about ``axis`` by ``angle`` radians."""
    x, y, z = axis / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World -> camera ``[4, 4]`` in OpenCV axes, world z up."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    out = np.eye(4)
    out[:3, :3] = np.stack([right, down, forward])
    out[:3, 3] = -out[:3, :3] @ eye
    return out


def make_scenario(folder: Path, frames: int = 5) -> dict:
    (folder / "assets").mkdir()
    write_inria_ply(folder / "assets" / "bed.ply", n=30, seed=1)
    write_inria_ply(folder / "assets" / "forceps.ply", n=20, seed=2, sh_degree=1)
    frame_list = []
    for i in range(frames):
        eye = np.array([3.0 * math.cos(0.4 * i), 3.0 * math.sin(0.4 * i) - 4.0, 2.0])
        pose = np.eye(4)
        # Turning by more than 180 degrees over the clip: the quaternion track must not
        # take the long way between keys, and the export must still match every frame.
        pose[:3, :3] = 1.5 * rotation(np.array([0.3, -0.5, 1.0]), 1.1 * i)
        pose[:3, 3] = [0.2 * i, -0.1, 0.05 * i]
        poses = {"bed": np.eye(4).tolist()}
        if i != 2:  # the forceps leave the view in the third frame
            poses["forceps"] = pose.tolist()
        frame_list.append({
            "name": f"frame_{i + 1:04d}",
            "camera": {"width": WIDTH, "height": HEIGHT, "K": [row[:] for row in K],
                       "world_to_camera": look_at(eye, np.zeros(3)).tolist()},
            "poses": poses,
        })
    return {
        "format": "gs-scenario", "version": 1, "classes": ["forceps"],
        "assets": {"bed": {"ply": "assets/bed.ply"}, "forceps": {"ply": "assets/forceps.ply"}},
        "objects": {"bed": {"asset": "bed", "role": "background"},
                    "forceps": {"asset": "forceps", "role": "instrument", "class": "forceps"}},
        "render": {"near": 0.05, "far": 50.0},
        "output": {"image_format": "jpg", "yolo_task": "segment", "coco": False,
                   "masks": True, "amodal": True, "depth": True, "val_fraction": 0.3},
        "frames": frame_list,
    }


def run_script(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)


def test_export_of_the_built_scene_gives_the_scenario_back(addon, tmp_path):
    source = make_scenario(tmp_path)
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(source))
    blend = tmp_path / "scene" / "built.blend"

    done = run_script(scenario_path, "--out", blend)
    assert done.returncode == 0, done.stderr
    assert blend.is_file() and not list(blend.parent.glob("*.partial*"))

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 5)
    forceps = bpy.data.objects["forceps"]
    assert forceps.gsds.role == 'INSTRUMENT' and forceps.gsds.class_name == "forceps"
    assert bpy.data.objects["bed"].gsds.role == 'BACKGROUND'
    assert forceps.gsds.source_path == "//../assets/forceps.ply"  # moves with the folder
    assert scene.gsds.output_dir == "//dataset/"

    exported_path = tmp_path / "exported.json"
    assert bpy.ops.gsds.export_scenario(filepath=str(exported_path)) == {'FINISHED'}
    exported = json.loads(exported_path.read_text())
    assert exported["output"] == source["output"]
    assert exported["render"] == pytest.approx(source["render"])
    assert exported["classes"] == ["forceps"]
    assert list(exported["objects"].items()) == list(source["objects"].items())  # ids
    assert {name: (tmp_path / a["ply"]).resolve() for name, a in exported["assets"].items()} \
        == {name: (tmp_path / a["ply"]).resolve() for name, a in source["assets"].items()}
    assert [f["name"] for f in exported["frames"]] == [f["name"] for f in source["frames"]]
    for want, got in zip(source["frames"], exported["frames"], strict=True):
        assert (got["camera"]["width"], got["camera"]["height"]) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(got["camera"]["K"], want["camera"]["K"], atol=1e-4)
        np.testing.assert_allclose(got["camera"]["world_to_camera"],
                                   want["camera"]["world_to_camera"], atol=1e-5)
        assert sorted(got["poses"]) == sorted(want["poses"]), want["name"]
        for name, pose in want["poses"].items():
            np.testing.assert_allclose(got["poses"][name], pose, atol=1e-5)


def test_keys_between_frames_take_the_short_arc(addon, tmp_path):
    """Neighbouring rotation keys lie in the same quaternion hemisphere, so Blender's
    per-channel interpolation between them turns the short way, not through a flip."""
    source = make_scenario(tmp_path)
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(source))
    blend = tmp_path / "built.blend"
    assert run_script(scenario_path, "--out", blend).returncode == 0
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    forceps = bpy.data.objects["forceps"]
    quats = []
    for frame in (1, 2, 4, 5):  # the keyed frames (the forceps are absent in frame 3)
        bpy.context.scene.frame_set(frame)
        quats.append(np.array(forceps.rotation_quaternion))
    assert all(float(np.dot(a, b)) > 0.0 for a, b in itertools.pairwise(quats))


def test_settings_the_blend_cannot_hold_are_named(tmp_path):
    source = make_scenario(tmp_path)
    source["output"]["split_seed"] = 7
    source["render"]["background"] = [1, 1, 1]
    source["assets"]["forceps"]["keep"] = [0, 1, 2]
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(source))
    done = run_script(scenario_path, "--out", tmp_path / "x.blend")
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "is not carried" in line]
    assert len(notes) == 2
    for field in ("output.split_seed = 7", "render.background = [1, 1, 1]"):
        assert any(field in note for note in notes), field
    assert "keep" not in done.stderr  # carried: the proxy holds only the kept Gaussians


def test_parts_come_back_as_parts(addon, tmp_path):
    """A two-part instrument (complementary ``keep`` lists of one file, one ``instance``,
    posed apart) is rebuilt as two proxies that export the same objects back."""
    source = make_scenario(tmp_path)
    source["assets"] = {"bed": source["assets"]["bed"],
                        "shaft": {"ply": "assets/forceps.ply", "keep": list(range(0, 12))},
                        "jaw": {"ply": "assets/forceps.ply", "keep": list(range(12, 20))}}
    source["objects"] = {
        "bed": source["objects"]["bed"],
        "forceps": {"asset": "shaft", "role": "instrument", "class": "forceps",
                    "instance": "forceps"},
        "forceps jaw": {"asset": "jaw", "role": "instrument", "class": "forceps",
                        "instance": "forceps"}}
    for i, frame in enumerate(source["frames"]):
        if "forceps" in frame["poses"]:
            jaw = np.array(frame["poses"]["forceps"])
            jaw[:3, :3] = jaw[:3, :3] @ rotation(np.array([0.0, 0.0, 1.0]), 0.2 * i)
            frame["poses"]["forceps jaw"] = jaw.tolist()
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(source))
    blend = tmp_path / "built.blend"
    done = run_script(scenario_path, "--out", blend)
    assert done.returncode == 0, done.stderr

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    shaft, jaw = bpy.data.objects["forceps"], bpy.data.objects["forceps jaw"]
    assert shaft.gsds.instance == jaw.gsds.instance == "forceps"
    assert bpy.data.objects["bed"].gsds.instance == ""
    assert (len(shaft.data.vertices), len(jaw.data.vertices)) == (12, 8)
    exported_path = tmp_path / "exported.json"
    assert bpy.ops.gsds.export_scenario(filepath=str(exported_path)) == {'FINISHED'}
    exported = json.loads(exported_path.read_text())
    objects = exported["objects"]
    assert {n: o.get("instance") for n, o in objects.items()} == {
        "bed": None, "forceps": "forceps", "forceps jaw": "forceps"}
    keeps = {n: exported["assets"][o["asset"]].get("keep") for n, o in objects.items()}
    assert keeps == {"bed": None, "forceps": list(range(12)), "forceps jaw": list(range(12, 20))}
    for want, got in zip(source["frames"], exported["frames"], strict=True):
        assert sorted(got["poses"]) == sorted(want["poses"])
        for name, pose in want["poses"].items():
            np.testing.assert_allclose(got["poses"][name], pose, atol=1e-5)


def test_renamed_frames_and_renumbered_instruments_are_named(tmp_path):
    source = make_scenario(tmp_path)
    source["objects"] = {"zeta": dict(source["objects"]["forceps"]),
                         **source["objects"]}  # two instruments, not in name order
    for i, frame in enumerate(source["frames"]):
        frame["name"] = f"take3_{i}"
        if "forceps" in frame["poses"]:
            frame["poses"]["zeta"] = frame["poses"]["forceps"]
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(source))
    done = run_script(scenario_path, "--out", tmp_path / "x.blend")
    assert done.returncode == 0, done.stderr
    assert "frames are exported as frame_0001 ... frame_0005, not take3_0 ... take3_4" \
        in done.stderr
    assert "instruments are exported in name order ['forceps', 'zeta'], not " \
        "['zeta', 'forceps']" in done.stderr


def test_varying_intrinsics_are_refused_naming_the_frame(tmp_path):
    source = make_scenario(tmp_path)
    source["frames"][1]["camera"]["K"][0][0] = 250.0
    source["frames"][1]["camera"]["K"][1][1] = 250.0
    scenario_path = tmp_path / "scenario.json"
    scenario_path.write_text(json.dumps(source))
    done = run_script(scenario_path, "--out", tmp_path / "x.blend")
    assert done.returncode == 2
    assert "frames[1].camera" in done.stderr
    assert not (tmp_path / "x.blend").exists()


def _with(change):
    """Scenario JSON text: :func:`make_scenario` in ``folder``, changed by ``change``."""
    def text(folder: Path) -> str:
        data = make_scenario(folder)
        change(data)
        return json.dumps(data)
    return text


@pytest.mark.parametrize("content, expected", [
    (None, "scenario.json: file not found"),
    (lambda folder: "{not json", "scenario.json: line 1 column 2: invalid JSON"),
    (lambda folder: json.dumps({"format": "gs-scenario", "version": 2}),
     "scenario.json: version: unsupported version 2"),
    (_with(lambda d: d.update(frames=[])), "scenario.json: frames: no frames"),
    # the backend's own reader: the same rules and the same words
    (_with(lambda d: d["frames"][1]["camera"]["K"][0].__setitem__(0, 10**400)),
     "frames[1].camera.K: entry [0][0] is too large"),
    (_with(lambda d: d["frames"][0].update(name="frame_0001\n")), "frames[0].name"),
    (_with(lambda d: d["assets"]["bed"].update(ply="/dev/zero")),
     "assets.bed.ply: a character device"),
])
def test_bad_scenario_files_exit_2_with_one_line(tmp_path, content, expected):
    path = tmp_path / "scenario.json"
    if content is not None:
        path.write_text(content(tmp_path))
    done = run_script(path, "--out", tmp_path / "x.blend")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0], done.stderr
    assert not (tmp_path / "x.blend").exists()
