"""``gs-backend replay`` end to end on recordings with known ground truth
(gs_backend.synthetic.recording): poses at sample times equal the truth, poses between
samples equal an independent slerp (scipy) pushed through the calibration chain written
here, the written scenario renders and resolves its assets from anywhere, and every
refusal is exit 2 with one line and no file written.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from gs_backend.cli import main
from gs_backend.synthetic.recording import GroundTruth, make_recording
from gs_contract.recording import replay_file
from gs_contract.scenario import load_scenario
from tests.scenario_factory import look_down, translation, write_scenario

ROOT = Path(__file__).resolve().parents[1]
START, END = 0.0, 3.0


def world_from_camera(t: float) -> np.ndarray:
    """The camera looks down on the scene from ~1 m, drifting and turning slowly."""
    pose = np.linalg.inv(np.array(look_down(1.0 + 0.05 * t, x=0.02 * t, y=-0.01 * t)))
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_rotvec([0.02 * t, -0.01 * t, 0.3 * t]).as_matrix()
    return pose @ turn


def driver(t: float) -> np.ndarray:
    return np.array(translation(-0.1 + 0.05 * t, 0.05 * math.cos(t), 0.1, yaw=0.3 * t))


def grasper(t: float) -> np.ndarray:
    """Scaled by 1.5 (an asset in other units), turning about a tilted axis."""
    pose = np.eye(4)
    pose[:3, :3] = 1.5 * Rotation.from_rotvec(np.array([0.3, 0.2, 1.0]) * 0.8 * t).as_matrix()
    pose[:3, 3] = [0.1, -0.08 + 0.02 * t, 0.15]
    return pose


def record(folder: Path, image_times: np.ndarray, **options: Any) -> GroundTruth:
    base = folder / "base" / "scenario.json"
    if not base.exists():
        write_scenario(base.parent)
    return make_recording(folder / "rec", base, camera=world_from_camera,
                          tools={"driver": driver, "grasper": grasper},
                          image_times_s=image_times, tracker_start_s=START,
                          tracker_end_s=END, **options)


def assert_close(got: Any, expected: np.ndarray, rtol: float = 1e-9) -> None:
    """Equal to ``rtol`` relative to the matrix's largest entry."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0,
                               atol=rtol * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("options", [
    {}, {"camera_calibration_scale": 1.0}, {"world_from_tracker": np.eye(4)},
    {"clock_offset_s": -12.5, "seed": 3}])
def test_poses_at_sample_times_equal_the_ground_truth(tmp_path: Path,
                                                      options: dict[str, Any]) -> None:
    times = np.linspace(0.2, 2.8, 9)
    truth = record(tmp_path, times, extra_sample_times_s=times, **options)
    replay = replay_file(truth.recording)
    assert replay.image_names == truth.image_names
    np.testing.assert_allclose(replay.image_times_s, truth.image_times_s, rtol=0, atol=1e-12)
    for i, frame in enumerate(replay.scenario["frames"]):
        assert frame["name"] == truth.image_names[i]
        assert_close(frame["camera"]["world_to_camera"], truth.world_to_camera[i])
        for name, poses in truth.poses.items():
            assert_close(frame["poses"][name], poses[i])


def oracle_tracker_from_sensor(truth: GroundTruth, sensor: str, t: float) -> np.ndarray:
    """scipy's slerp of the written samples' rotations, numpy's interp of translations."""
    times, matrices = truth.samples[sensor]
    out = np.eye(4)
    out[:3, :3] = Slerp(times, Rotation.from_matrix(matrices[:, :3, :3]))([t]).as_matrix()[0]
    out[:3, 3] = [np.interp(t, times, matrices[:, k, 3]) for k in range(3)]
    return out


def test_poses_between_samples_equal_an_independent_slerp(tmp_path: Path) -> None:
    times = np.linspace(0.21, 2.79, 23)
    truth = record(tmp_path, times, camera_calibration_scale=0.5)
    replay = replay_file(truth.recording)
    w = truth.world_from_tracker
    for i, frame in enumerate(replay.scenario["frames"]):
        t = truth.tracker_times_s[i]
        for name in ("driver", "grasper"):
            tracker = oracle_tracker_from_sensor(truth, truth.sensor_of[name], t)
            expected = w @ tracker @ truth.sensor_from[name]
            assert_close(frame["poses"][name], expected)
            assert_close(frame["poses"][name], truth.poses[name][i], rtol=1e-3)  # sanity
        chain = w @ oracle_tracker_from_sensor(truth, "cam_sensor", t) \
            @ truth.sensor_from["camera"]
        scale = np.cbrt(np.linalg.det(chain[:3, :3]))
        rigid = chain.copy()
        rigid[:3, :3] /= scale
        assert_close(frame["camera"]["world_to_camera"], np.linalg.inv(rigid))
        assert_close(frame["camera"]["world_to_camera"], truth.world_to_camera[i], rtol=1e-3)
        assert_close(frame["poses"]["scene"], truth.poses["scene"][i])


def test_cli_writes_a_scenario_that_renders_from_another_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    truth = record(tmp_path, np.linspace(0.5, 2.5, 3))
    out = tmp_path / "out" / "replayed.json"
    assert main(["replay", str(truth.recording), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["frames"] == 3
    assert report["first_frame"] == "img_0001" and report["last_frame"] == "img_0003"
    assert set(report["sensors"]) == {"cam_sensor", "tool_1", "tool_2"}
    assert report["clock_offset_s"] == 0.137
    assert 0 < report["max_interpolation_gap_s"] <= report["max_gap_s"] == 0.1
    np.testing.assert_allclose(report["image_time_span_s"],
                               [truth.image_times_s[0], truth.image_times_s[-1]])
    for sensor, info in report["sensors"].items():
        times = truth.samples[sensor][0]
        assert info == {"samples": len(times), "first_s": times[0], "last_s": times[-1]}

    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["assets"]["tissue"]["ply"] == "../base/assets/tissue.ply"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scenario = load_scenario(Path("..") / "out" / "replayed.json")
    assert [f.name for f in scenario.frames] == list(truth.image_names)
    dataset = tmp_path / "dataset"
    assert main(["render", str(out), "--out", str(dataset), "--device", "cpu",
                 "--progress", "none"]) == 0
    images = sorted(p.stem for p in (dataset / "images").rglob("*.png"))
    assert images == list(truth.image_names)


def set_field(path: Path, dotted: str, value: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def append(path: Path, text: str) -> int:
    """Append a line; return its line number."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return len(path.read_text(encoding="utf-8").splitlines())


SHEAR = [[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


def _gap(rec: Path) -> list[str]:
    set_field(rec, "max_gap_s", 0.001)
    return ["image 'img_0001.png', sensor 'cam_sensor'", "more than max_gap_s 0.001 s"]


def _outside(rec: Path) -> list[str]:
    append(rec.parent / "frames.csv", "late.png,100.0")
    return ["image 'late.png', sensor 'cam_sensor'", "outside the sensor's samples"]


def _unknown_sensor(rec: Path) -> list[str]:
    set_field(rec, "objects.driver.sensor", "tool_9")
    return ["objects.driver.sensor: unknown sensor 'tool_9'"]


def _not_similarity(rec: Path) -> list[str]:
    set_field(rec, "camera.sensor_from_camera", SHEAR)
    return ["camera.sensor_from_camera: not a similarity: anisotropy"]


def _bad_row(rec: Path) -> list[str]:
    line = append(rec.parent / "poses.csv", "1.0,tool_1,1,0,0,0,x,0,0")
    return [f"poses.csv: line {line}, column tx: expected a number, got 'x'"]


def _duplicate_image(rec: Path) -> list[str]:
    line = append(rec.parent / "frames.csv", "other/img_0002.jpg,1.0")
    return [f"frames.csv: line {line}, column name", "same name 'img_0002'"]


def _no_images(rec: Path) -> list[str]:
    (rec.parent / "frames.csv").unlink()
    return ["recording.json: images.file: file not found"]


def _no_tracking(rec: Path) -> list[str]:
    (rec.parent / "poses.csv").unlink()
    return ["recording.json: tracking.file: file not found"]


def _no_base(rec: Path) -> list[str]:
    (rec.parent.parent / "base" / "scenario.json").unlink()
    return ["recording.json: base: file not found"]


def _not_json(rec: Path) -> list[str]:
    rec.write_text("{", encoding="utf-8")
    return ["recording.json: line 1 column 2: invalid JSON"]


@pytest.mark.parametrize("spoil", [_gap, _outside, _unknown_sensor, _not_similarity, _bad_row,
                                   _duplicate_image, _no_images, _no_tracking, _no_base,
                                   _not_json])
def test_refusals_exit_2_with_one_line_and_write_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], spoil: Any) -> None:
    truth = record(tmp_path, np.linspace(0.5, 2.5, 3))
    expected = spoil(truth.recording)
    out = tmp_path / "out" / "replayed.json"
    assert main(["replay", str(truth.recording), "--out", str(out), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("gs-backend: error: ")
    for words in expected:
        assert words in lines[0]
    assert not out.parent.exists()


def test_output_that_is_an_input_or_a_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = record(tmp_path, np.linspace(0.5, 2.5, 3))
    before = truth.recording.read_bytes()
    for out, words in ((truth.recording, "is the recording"),
                       (truth.recording.parent / "frames.csv", "is the image table"),
                       (tmp_path, "is a folder")):
        assert main(["replay", str(truth.recording), "--out", str(out)]) == 2
        assert words in capsys.readouterr().err
    assert truth.recording.read_bytes() == before


def test_refusal_through_the_real_command_line(tmp_path: Path) -> None:
    truth = record(tmp_path, np.linspace(0.5, 2.5, 3))
    set_field(truth.recording, "objects.grasper.sensor_from_asset", SHEAR)
    out = tmp_path / "replayed.json"
    done = subprocess.run([sys.executable, "-m", "gs_backend", "replay", str(truth.recording),
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "objects.grasper.sensor_from_asset: not a similarity" in done.stderr
    assert not out.exists()


DEMO_S = 4.0  # the demo's clip played over 4 s


def test_demo_motion_replays_close_to_its_continuous_truth(tmp_path: Path) -> None:
    """The demo's own scene and motion (what the demo will replay): at 40 Hz with drops,
    the replayed poses stay within a millimetre (and a milliradian) of the continuous
    motion; what remains is interpolation error, so not zero."""
    from gs_backend.synthetic.demo_scenario import demo_scenario_dict, scenario_json_text
    from gs_backend.synthetic.recording import demo_motions

    base = tmp_path / "demo" / "scenario.json"
    (base.parent / "assets").mkdir(parents=True)
    for name in ("tissue", "needle_driver", "grasper"):
        (base.parent / "assets" / f"{name}.ply").write_bytes(b"")  # parsing needs them only
    base.write_text(scenario_json_text(demo_scenario_dict(frames=2)), encoding="utf-8")
    camera, tools = demo_motions(DEMO_S)
    truth = make_recording(tmp_path / "rec", base, camera=camera, tools=tools,
                           image_times_s=np.arange(0.0, DEMO_S, 1 / 30), tracker_start_s=-0.1,
                           tracker_end_s=DEMO_S + 0.1)
    replay = replay_file(truth.recording)
    assert len(replay.image_names) == round(DEMO_S * 30)
    worst = {"camera": 0.0, "driver": 0.0, "grasper": 0.0}
    for i, frame in enumerate(replay.scenario["frames"]):
        worst["camera"] = max(worst["camera"], float(np.abs(
            np.asarray(frame["camera"]["world_to_camera"]) - truth.world_to_camera[i]).max()))
        for name in ("driver", "grasper"):
            worst[name] = max(worst[name], float(np.abs(
                np.asarray(frame["poses"][name]) - truth.poses[name][i]).max()))
    assert all(0 < error < 1e-3 for error in worst.values()), worst


