"""gs_contract.recording, pure parts: interpolation, the tracker and image tables, and
the recording's validation (every refusal names the file and the field or line/column).

Oracles: closed-form rotations (Rodrigues' formula written here) for a constant angular
velocity, and scipy's ``Slerp`` / ``Rotation`` for random pairs. Recordings are written
by hand here (the base scenario's asset files only need to exist: parsing does not read
them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from gs_contract.errors import InputError
from gs_contract.recording import (
    SensorTrack,
    read_images,
    read_recording,
    read_tracking,
    replay_file,
    slerp,
    tracker_from_sensor_at,
)

HEADER = "timestamp,sensor,qw,qx,qy,qz,tx,ty,tz\n"


def rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation by ``angle`` about the unit ``axis`` (R = I + sin K + (1 - cos) K^2)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def quat_wxyz(axis: np.ndarray, angle: float) -> np.ndarray:
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])


def make_track(times: list[float], quats: list[np.ndarray], translations: list[list[float]],
               sensor: str = "tool_1") -> SensorTrack:
    return SensorTrack(sensor, np.array(times, dtype=float), np.array(quats, dtype=float),
                       np.array(translations, dtype=float), np.arange(len(times)) + 2)


AXIS = np.array([2.0, -1.0, 0.5]) / np.linalg.norm([2.0, -1.0, 0.5])


# ---------------------------------------------------------------------------
# interpolation


@pytest.mark.parametrize("flip", [False, True])
def test_constant_angular_velocity_midpoint_is_half_the_rotation(flip: bool) -> None:
    """Between rotations by 0 and 2.5 rad about one axis, time u gives rotation by
    2.5 u (closed form), whichever sign the second quaternion is written with."""
    q1 = quat_wxyz(AXIS, 2.5) * (-1 if flip else 1)
    track = make_track([10.0, 11.0], [quat_wxyz(AXIS, 0.0), q1], [[0, 0, 0], [2, 4, 6]])
    for u in (0.5, 0.25, 0.9):
        got = tracker_from_sensor_at(track, 10.0 + u, 2.0, image="img")
        np.testing.assert_allclose(got[:3, :3], rodrigues(AXIS, 2.5 * u), atol=1e-14)
        np.testing.assert_allclose(got[:3, 3], np.array([2, 4, 6]) * u, atol=1e-14)
        np.testing.assert_array_equal(got[3], [0, 0, 0, 1])


def test_slerp_takes_the_shortest_arc() -> None:
    """4 rad one way is 2pi - 4 rad the other: the midpoint is half of the short way."""
    track = make_track([0.0, 1.0], [quat_wxyz(AXIS, 0.0), quat_wxyz(AXIS, 4.0)],
                       [[0, 0, 0], [0, 0, 0]])
    got = tracker_from_sensor_at(track, 0.5, 2.0, image="img")
    np.testing.assert_allclose(got[:3, :3], rodrigues(AXIS, -(2 * math.pi - 4.0) / 2),
                               atol=1e-14)


def test_slerp_matches_scipy_on_random_pairs() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        r = Rotation.random(2, random_state=rng)
        u = float(rng.uniform())
        xyzw = r.as_quat() * rng.choice([-1, 1], size=(2, 1))
        wxyz = xyzw[:, [3, 0, 1, 2]]
        if rng.uniform() < 0.2:  # nearly equal rotations: the small-angle path
            wxyz[1] = wxyz[0] + rng.normal(scale=1e-9, size=4)
            wxyz[1] /= np.linalg.norm(wxyz[1])
            r = Rotation.from_quat(wxyz[:, [1, 2, 3, 0]])
        expected = Slerp([0.0, 1.0], r)([u]).as_matrix()[0]
        got = Rotation.from_quat(slerp(wxyz[0], wxyz[1], u)[[1, 2, 3, 0]]).as_matrix()
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_exact_sample_times_return_the_samples() -> None:
    rng = np.random.default_rng(2)
    r = Rotation.random(4, random_state=rng)
    quats = (r.as_quat()[:, [3, 0, 1, 2]] * np.array([[1], [-1], [1], [-1]]))
    translations = rng.normal(size=(4, 3))
    track = make_track([0.0, 0.03, 0.05, 0.09], list(quats), translations.tolist())
    for i, t in enumerate([0.0, 0.03, 0.05, 0.09]):
        got = tracker_from_sensor_at(track, t, 0.1, image="img")
        np.testing.assert_allclose(got[:3, :3], r[i].as_matrix(), atol=1e-15)
        np.testing.assert_array_equal(got[:3, 3], translations[i])


@pytest.mark.parametrize(("t", "words"), [
    (-0.01, "outside the sensor's samples"), (0.4, "outside the sensor's samples"),
    (0.2, "more than max_gap_s 0.1 s")])
def test_outside_and_gap_are_refused_naming_image_and_sensor(t: float, words: str) -> None:
    q = quat_wxyz(AXIS, 0.0)
    track = make_track([0.0, 0.05, 0.3], [q, q, q], [[0, 0, 0]] * 3, sensor="tool_7")
    with pytest.raises(InputError) as caught:
        tracker_from_sensor_at(track, t, 0.1, image="img_0042.png", source="rec.json")
    message = caught.value.message
    assert message.startswith("rec.json: image 'img_0042.png', sensor 'tool_7': ")
    assert words in message


def test_gap_exactly_max_gap_is_accepted() -> None:
    q = quat_wxyz(AXIS, 0.0)
    track = make_track([0.0, 0.125], [q, q], [[0, 0, 0], [1, 0, 0]])
    got = tracker_from_sensor_at(track, 0.0625, 0.125, image="img")
    np.testing.assert_allclose(got[:3, 3], [0.5, 0, 0], atol=1e-15)


# ---------------------------------------------------------------------------
# the tracker table


def test_tracking_csv_unsorted_interleaved_missing_and_signs(tmp_path: Path) -> None:
    q = quat_wxyz(AXIS, 0.3)
    path = tmp_path / "poses.csv"
    path.write_text(
        "tx,ty,tz,timestamp,sensor,qw,qx,qy,qz,quality\n"  # any column order, extra column
        f"1,2,3,0.2,b,{q[0]},{q[1]},{q[2]},{q[3]},9\n"
        f"4,5,6,0.1,a,{-q[0]},{-q[1]},{-q[2]},{-q[3]},9\n"
        ",,,0.15,a,,,,,0\n"  # a missing sample
        "\n"
        f"7,8,9,0.0,a,{q[0] * 1.004},{q[1] * 1.004},{q[2] * 1.004},{q[3] * 1.004},9\n"
        "NaN,nan,nan,0.05,b,nan,nan,nan,nan,nan\n", encoding="utf-8")
    tracks = read_tracking(path, "csv")
    assert list(tracks) == ["b", "a"]
    a = tracks["a"]
    np.testing.assert_array_equal(a.times_s, [0.0, 0.1])
    np.testing.assert_array_equal(a.translations, [[7, 8, 9], [4, 5, 6]])
    np.testing.assert_array_equal(a.lines, [6, 3])
    np.testing.assert_allclose(np.linalg.norm(a.quaternions_wxyz, axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(a.quaternions_wxyz[0], q, atol=1e-15)  # normalised
    np.testing.assert_array_equal(tracks["b"].times_s, [0.2])


@pytest.mark.parametrize(("row", "where", "words"), [
    ("0.1,a,1,0,0,0,abc,0,0", "line 3, column tx", "expected a number, got 'abc'"),
    ("0.1,a,1,0,0,0,inf,0,0", "line 3, column tx", "finite"),
    ("x,a,1,0,0,0,0,0,0", "line 3, column timestamp", "expected a number"),
    ("0.1,,1,0,0,0,0,0,0", "line 3, column sensor", "empty cell"),
    ("0.1,a,1.5,0,0,0,0,0,0", "line 3, column qw/qx/qy/qz", "quaternion norm 1.5"),
    ("0.1,a,0,0,0,0,0,0,0", "line 3, column qw/qx/qy/qz", "quaternion norm 0"),
    ("0.1,a,1,0,0,0,,,", "line 3, column tx", "empty cell"),
    ("0.1,a,1,0,0,0,0,0", "line 3", "8 cells, but the header has 9 columns"),
    ("0.0,a,1,0,0,0,0,0,0", "line 3", "two samples at time 0.0 s (lines 2 and 3)"),
])
def test_bad_tracking_rows_name_line_and_column(tmp_path: Path, row: str, where: str,
                                                words: str) -> None:
    path = tmp_path / "poses.csv"
    path.write_text(HEADER + "0.0,a,1,0,0,0,0,0,0\n" + row + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_tracking(path, "csv")
    assert caught.value.message.startswith(f"{path}: {where}: ")
    assert words in caught.value.message


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty: expected a header"),
    ("timestamp,sensor,qw,qx,qy,qz,tx,ty\n", "header lacks column 'tz'"),
    (HEADER, "no tracker samples"),
])
def test_bad_tracking_tables(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "poses.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=words):
        read_tracking(path, "csv")


def test_images_sorted_by_time_and_named_by_stem(tmp_path: Path) -> None:
    path = tmp_path / "frames.csv"
    path.write_text("name,timestamp\nvideo/b.png,2.0\nC:\\cap\\a.jpg,1.0\nc.tar.png,3\n",
                    encoding="utf-8")
    images = read_images(path)
    assert [(i.name, i.time_s, i.line) for i in images] == [
        ("a", 1.0, 3), ("b", 2.0, 2), ("c.tar", 3.0, 4)]


@pytest.mark.parametrize(("rows", "where", "words"), [
    ("a.png,1\nsub/a.jpg,2\n", "line 3, column name", "same name 'a' as the image on line 2"),
    ("-a.png,1\n", "line 2, column name", "must be 1-128 characters"),
    ("a.png,soon\n", "line 2, column timestamp", "expected a number"),
])
def test_bad_image_tables(tmp_path: Path, rows: str, where: str, words: str) -> None:
    path = tmp_path / "frames.csv"
    path.write_text("name,timestamp\n" + rows, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_images(path)
    assert caught.value.message.startswith(f"{path}: {where}: ")
    assert words in caught.value.message


# ---------------------------------------------------------------------------
# the recording file


def write_recording(folder: Path, **overrides: Any) -> Path:
    """A minimal valid recording: a camera sensor and a tool sensor, each with samples
    at 0.0 and 0.1 s (identity rotation, moving along x), two images."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tissue.ply", "tool.ply"):
        (folder / name).write_bytes(b"")  # parsing checks that asset files exist only
    base = {"format": "gs-scenario", "version": 1, "classes": ["tool"],
            "assets": {"tissue": {"ply": "tissue.ply"}, "tool": {"ply": "tool.ply"}},
            "objects": {"scene": {"asset": "tissue", "role": "background"},
                        "driver": {"asset": "tool", "role": "instrument", "class": "tool"}}}
    (folder / "base.json").write_text(json.dumps(base), encoding="utf-8")
    (folder / "poses.csv").write_text(
        HEADER + "0.0,cam,1,0,0,0,0,0,0\n0.1,cam,1,0,0,0,10,0,0\n"
        "0.0,tool_1,1,0,0,0,0,0,5\n0.1,tool_1,1,0,0,0,0,10,5\n", encoding="utf-8")
    (folder / "frames.csv").write_text("name,timestamp\nimg_1.png,0.0\nimg_2.png,0.05\n",
                                       encoding="utf-8")
    recording: dict[str, Any] = {
        "format": "gs-recording", "version": 1, "base": "base.json",
        "tracking": {"file": "poses.csv", "format": "csv"}, "images": {"file": "frames.csv"},
        "clock_offset_s": 0.0, "max_gap_s": 0.1,
        "camera": {"width": 64, "height": 48, "K": [[50, 0, 32], [0, 50, 24], [0, 0, 1]],
                   "sensor": "cam", "sensor_from_camera": np.eye(4).tolist()},
        "objects": {"scene": {"pose": np.eye(4).tolist()},
                    "driver": {"sensor": "tool_1", "sensor_from_asset": np.eye(4).tolist()}},
    }
    for key, value in overrides.items():
        target, *path = key.split(".")
        node = recording
        for part in [target, *path][:-1]:
            node = node[part]
        last = [target, *path][-1]
        if value is None:
            del node[last]
        else:
            node[last] = value
    path = folder / "recording.json"
    path.write_text(json.dumps(recording), encoding="utf-8")
    return path


def test_minimal_recording_replays(tmp_path: Path) -> None:
    replay = replay_file(write_recording(tmp_path))
    assert replay.image_names == ("img_1", "img_2")
    frame = replay.scenario["frames"][1]
    np.testing.assert_allclose(frame["poses"]["driver"],
                               [[1, 0, 0, 0], [0, 1, 0, 5], [0, 0, 1, 5], [0, 0, 0, 1]])
    np.testing.assert_allclose(frame["camera"]["world_to_camera"],
                               [[1, 0, 0, -5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


SHEAR = [[1, 0.2, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
MIRROR = [[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


@pytest.mark.parametrize(("overrides", "where", "words"), [
    ({"format": "gs-scenario"}, "format", "expected 'gs-recording'"),
    ({"version": 2}, "version", "unsupported version 2"),
    ({"extra": 1}, "extra", "unknown key"),
    ({"camera": None}, "camera", "missing required field"),
    ({"camera.K": [[50, 0, 32], [0, -50, 24], [0, 0, 1]]}, "camera.K",
     "focal lengths must be positive"),
    ({"camera.width": 0}, "camera.width", "image size"),
    ({"camera.sensor_from_camera": SHEAR}, "camera.sensor_from_camera", "anisotropy"),
    ({"objects.driver.sensor_from_asset": MIRROR}, "objects.driver.sensor_from_asset",
     "negative determinant"),
    ({"world_from_tracker": SHEAR}, "world_from_tracker", "not a similarity"),
    ({"objects.scene.pose": [[1, 0], [0, 1]]}, "objects.scene.pose", "4x4"),
    ({"objects.driver.sensor": "tool_9"}, "objects.driver.sensor",
     "unknown sensor 'tool_9': no sample of it in poses.csv"),
    ({"camera.sensor": "endo"}, "camera.sensor", "unknown sensor 'endo'"),
    ({"objects.ghost": {"pose": np.eye(4).tolist()}}, "objects.ghost",
     "not an object of the base scenario"),
    ({"objects.scene": None}, "objects.scene", "missing: base object 'scene'"),
    ({"objects.driver.pose": np.eye(4).tolist()}, "objects.driver", "not both"),
    ({"objects.driver.sensor_from_asset": None}, "objects.driver.sensor_from_asset",
     "missing required field"),
    ({"max_gap_s": 0}, "max_gap_s", "must be positive"),
    ({"clock_offset_s": "0.1"}, "clock_offset_s", "expected a finite number"),
    ({"tracking.format": "vicon"}, "tracking.format", "unknown tracking format 'vicon'"),
    ({"tracking.file": "nope.csv"}, "tracking.file", "file not found"),
    ({"images.file": "nope.csv"}, "images.file", "file not found"),
    ({"base": "nope.json"}, "base", "file not found"),
])
def test_bad_recordings_name_the_field(tmp_path: Path, overrides: dict[str, Any], where: str,
                                       words: str) -> None:
    path = write_recording(tmp_path, **overrides)
    with pytest.raises(InputError) as caught:
        read_recording(path)
    assert caught.value.message.startswith(f"{path}: {where}: "), caught.value.message
    assert words in caught.value.message


def test_bad_base_scenario_names_the_base_file(tmp_path: Path) -> None:
    path = write_recording(tmp_path)
    base = json.loads((tmp_path / "base.json").read_text(encoding="utf-8"))
    base["objects"]["driver"]["class"] = "scalpel"
    (tmp_path / "base.json").write_text(json.dumps(base), encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_recording(path)
    assert caught.value.message.startswith(f"{tmp_path / 'base.json'}: objects.driver.class: ")


def test_the_base_scenarios_own_frames_are_ignored(tmp_path: Path) -> None:
    path = write_recording(tmp_path)
    base = json.loads((tmp_path / "base.json").read_text(encoding="utf-8"))
    base["frames"] = "anything"
    (tmp_path / "base.json").write_text(json.dumps(base), encoding="utf-8")
    assert len(replay_file(path).scenario["frames"]) == 2


def test_image_outside_the_tracked_time_is_refused(tmp_path: Path) -> None:
    path = write_recording(tmp_path, clock_offset_s=0.08)
    with pytest.raises(InputError) as caught:
        replay_file(path)
    assert caught.value.message.startswith(f"{path}: image 'img_2.png', sensor 'cam': ")
    assert "tracker time 0.130000 s is outside" in caught.value.message
