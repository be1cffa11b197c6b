"""Tracked recordings with known ground truth (DESIGN contract 8), for tests and the demo.

:func:`make_recording` plays a known motion (the camera and each tracked object as
functions of tracker time) through a simulated tracker and video and writes a
``gs-recording`` v1 folder::

    FOLDER/recording.json   base (relative path), tracking, images, calibrations
    FOLDER/poses.csv        tracker samples: own rate, timestamp jitter, missing samples
                            (no row, or a row with empty pose cells), rows shuffled
                            (sensors interleaved), random quaternion signs
    FOLDER/frames.csv       image names and timestamps on the video's own clock

The tracker measures in millimetres by default (``world_from_tracker`` scales mm -> m and
turns the tracker's axes), and each sensor sits on its object through a hand-eye
calibration that is a random similarity. Everything is derived from the motion given,
so the returned :class:`GroundTruth` holds the exact poses at image times and at the
tracker's sample times. Quaternions come from scipy (an implementation independent of
``gs_contract``'s).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from gs_backend.synthetic import demo_scenario
from gs_contract.atomic import write_text_atomic
from gs_contract.scenario import Scenario, load_scenario

Motion = Callable[[float], np.ndarray]  # tracker time (s) -> [4, 4] world_from_X

RECORDING_NAME = "recording.json"
TRACKING_NAME = "poses.csv"
IMAGES_NAME = "frames.csv"
CAMERA_SENSOR = "cam_sensor"


@dataclass(frozen=True)
class GroundTruth:
    """What a replay of the written recording must reproduce.

    Attributes:
        recording: the ``recording.json`` written.
        image_names: the frame names (image stems), in time order.
        image_times_s: ``(F,)`` image timestamps (video clock).
        tracker_times_s: ``(F,)`` the same instants on the tracker's clock.
        world_to_camera: ``(F, 4, 4)`` the true camera at each image (OpenCV axes).
        poses: per object, ``(F, 4, 4)`` world_from_asset at each image (fixed objects
            too).
        world_from_tracker: ``[4, 4]``.
        sensor_from: per object (and ``"camera"``), the ``[4, 4]`` hand-eye calibration.
        samples: per sensor, ``(times (n,), tracker_from_sensor (n, 4, 4))``: the samples
            written (after drops), sorted by time.
        sensor_of: object name (or ``"camera"``) -> its sensor name.
    """

    recording: Path
    image_names: tuple[str, ...]
    image_times_s: np.ndarray
    tracker_times_s: np.ndarray
    world_to_camera: np.ndarray
    poses: dict[str, np.ndarray]
    world_from_tracker: np.ndarray
    sensor_from: dict[str, np.ndarray]
    samples: dict[str, tuple[np.ndarray, np.ndarray]]
    sensor_of: dict[str, str]


def make_recording(
    folder: Path,
    base_scenario: Path,
    *,
    camera: Motion,
    tools: Mapping[str, Motion],
    image_times_s: Sequence[float],
    tracker_start_s: float,
    tracker_end_s: float,
    tracker_rate_hz: float = 40.0,
    jitter_fraction: float = 0.2,
    drop_fraction: float = 0.1,
    max_gap_s: float = 0.1,
    clock_offset_s: float = 0.137,
    world_from_tracker: np.ndarray | None = None,
    camera_calibration_scale: float | None = None,
    extra_sample_times_s: Sequence[float] = (),
    image_prefix: str = "img_",
    noise_translation: float = 0.0,
    noise_rotation_deg: float = 0.0,
    seed: int = 0,
) -> GroundTruth:
    """Write a recording of ``camera`` and ``tools`` moving over ``base_scenario``.

    Args:
        folder: where to write (created); the recording refers to ``base_scenario`` by a
            path relative to it.
        base_scenario: a gs-scenario; objects not in ``tools`` keep the pose of its first
            frame (identity when absent there).
        camera: tracker time -> ``[4, 4]`` world_from_camera (rigid, OpenCV axes).
        tools: object name -> (tracker time -> ``[4, 4]`` world_from_asset, a similarity).
        image_times_s: image instants on the TRACKER clock (the table gets them minus
            ``clock_offset_s``).
        tracker_start_s, tracker_end_s: the tracker's first and last sample times.
        tracker_rate_hz: nominal sample rate.
        jitter_fraction: sample times move by up to this fraction of a period.
        drop_fraction: the fraction of samples dropped (never the first and last, and
            never so many in a row that a gap exceeds 0.9 ``max_gap_s``).
        max_gap_s, clock_offset_s: written into the recording.
        world_from_tracker: default: tracker millimetres -> world metres, axes turned.
        camera_calibration_scale: scale of ``sensor_from_camera``; default ``1 / s`` with
            ``s`` the scale of world_from_tracker (the camera frame in world units); any
            other value makes the chain's camera scale differ from 1.
        extra_sample_times_s: tracker times that always get a sample of every sensor.
        image_prefix: image names are ``<prefix><index:04d>.png``.
        noise_translation, noise_rotation_deg: tracker noise, the standard deviation of
            each sample's translation error per axis (tracker units, e.g. mm) and of its
            rotation error angle (degrees, random axis). The ground truth stays the
            motion's: with noise, a replay differs from it as a real one does.
        seed: randomness of calibrations, jitter, drops, row order and signs.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = load_scenario(base_scenario)
    w_from_t = _default_world_from_tracker() if world_from_tracker is None \
        else np.asarray(world_from_tracker, dtype=np.float64)
    tracker_scale = float(np.cbrt(np.linalg.det(w_from_t[:3, :3])))

    sensor_of = {"camera": CAMERA_SENSOR} | {name: f"tool_{i + 1}"
                                              for i, name in enumerate(tools)}
    camera_scale = 1.0 / tracker_scale if camera_calibration_scale is None \
        else camera_calibration_scale
    sensor_from: dict[str, np.ndarray] = {"camera": _random_similarity(rng, camera_scale)}
    motions: dict[str, Motion] = {"camera": _scaled_camera(camera, tracker_scale * camera_scale)}
    for name, motion in tools.items():
        asset_scale = float(np.cbrt(np.linalg.det(np.asarray(motion(tracker_start_s))[:3, :3])))
        sensor_from[name] = _random_similarity(rng, asset_scale / tracker_scale)
        motions[name] = motion

    tracker_from_world = np.linalg.inv(w_from_t)
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows: list[list[str]] = []
    for key, motion in motions.items():
        times, dropped = _sample_times(rng, tracker_start_s, tracker_end_s, tracker_rate_hz,
                                       jitter_fraction, drop_fraction, max_gap_s,
                                       extra_sample_times_s)
        # Half of the dropped samples leave a row with empty pose cells, as some trackers
        # write them; the others leave no row at all.
        rows += [[repr(float(t)), sensor_of[key], *[""] * 7] for t in dropped[::2]]
        matrices = np.stack([tracker_from_world @ motion(t) @ np.linalg.inv(sensor_from[key])
                             for t in times])
        if noise_translation or noise_rotation_deg:
            _add_noise(matrices, rng, noise_translation, noise_rotation_deg)
        samples[sensor_of[key]] = (times, matrices)
        quats = Rotation.from_matrix(matrices[:, :3, :3]).as_quat()  # xyzw
        signs = rng.choice([-1.0, 1.0], size=len(times))
        for t, q, s, m in zip(times, quats, signs, matrices, strict=True):
            wxyz = s * np.array([q[3], q[0], q[1], q[2]])
            rows.append([repr(float(t)), sensor_of[key], *map(_num, wxyz),
                         *map(_num, m[:3, 3])])
    rng.shuffle(rows)  # type: ignore[arg-type]
    _write_csv(folder / TRACKING_NAME, ["timestamp", "sensor", "qw", "qx", "qy", "qz",
                                        "tx", "ty", "tz"], rows)

    tracker_times = np.asarray(image_times_s, dtype=np.float64)
    names = tuple(f"{image_prefix}{i + 1:04d}" for i in range(len(tracker_times)))
    video_times = tracker_times - clock_offset_s
    _write_csv(folder / IMAGES_NAME, ["name", "timestamp"],
               [[f"{n}.png", repr(float(t))] for n, t in zip(names, video_times, strict=True)])

    fixed = _fixed_poses(base, tools)
    recording = {
        "format": "gs-recording", "version": 1,
        "base": Path(os.path.relpath(Path(base_scenario).absolute(), folder.absolute()))
        .as_posix(),
        "tracking": {"file": TRACKING_NAME, "format": "csv"},
        "images": {"file": IMAGES_NAME},
        "clock_offset_s": clock_offset_s,
        "max_gap_s": max_gap_s,
        "world_from_tracker": w_from_t.tolist(),
        "camera": {"width": base.frames[0].camera.width, "height": base.frames[0].camera.height,
                   "K": base.frames[0].camera.K.tolist(), "sensor": CAMERA_SENSOR,
                   "sensor_from_camera": sensor_from["camera"].tolist()},
        "objects": {name: ({"sensor": sensor_of[name],
                            "sensor_from_asset": sensor_from[name].tolist()}
                           if name in tools else {"pose": fixed[name].tolist()})
                    for name in base.objects},
    }
    path = folder / RECORDING_NAME
    write_text_atomic(path, json.dumps(recording, indent=1) + "\n")

    world_to_camera = np.stack([np.linalg.inv(camera(t)) for t in tracker_times])
    poses = {name: np.stack([tools[name](t) if name in tools else fixed[name]
                             for t in tracker_times]) for name in base.objects}
    return GroundTruth(path, names, video_times, tracker_times, world_to_camera, poses,
                       w_from_t, sensor_from, samples, sensor_of)


def demo_motions(duration_s: float) -> tuple[Motion, dict[str, Motion]]:
    """The bundled demo's motion (:mod:`gs_backend.synthetic.demo_scenario`) as functions
    of tracker time: clip time ``s = t / duration_s`` (the motion goes on smoothly
    beyond [0, 1], so a tracker may start before the first image and stop after the last).

    Returns:
        ``camera`` (world_from_camera) and ``tools`` (``driver`` and ``grasper``
        world_from_asset) for :func:`make_recording` with the demo's scenario as the base.
    """
    def clip(t: float) -> float:
        return t / duration_s

    def camera(t: float) -> np.ndarray:
        return np.linalg.inv(demo_scenario.world_to_camera(clip(t)))

    tools: dict[str, Motion] = {
        "driver": lambda t: demo_scenario.driver_pose(clip(t)),
        "grasper": lambda t: demo_scenario.grasper_pose(clip(t)),
    }
    return camera, tools


def _add_noise(matrices: np.ndarray, rng: np.random.Generator, translation: float,
               rotation_deg: float) -> None:
    """Perturb ``[n, 4, 4]`` rigid samples in place: translation error per axis with
    standard deviation ``translation``, a rotation error about a random axis by an angle
    with standard deviation ``rotation_deg``."""
    count = matrices.shape[0]
    matrices[:, :3, 3] += rng.normal(0.0, translation, (count, 3))
    axes = rng.normal(size=(count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.radians(rng.normal(0.0, rotation_deg, count))
    turn = Rotation.from_rotvec(axes * angles[:, None]).as_matrix()
    matrices[:, :3, :3] = turn @ matrices[:, :3, :3]


def _num(x: float) -> str:
    return repr(float(x))


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _default_world_from_tracker() -> np.ndarray:
    """Tracker millimetres -> world metres; the tracker stands turned and offset."""
    out = np.eye(4)
    out[:3, :3] = 0.001 * Rotation.from_euler("zyx", [35.0, -20.0, 170.0],
                                              degrees=True).as_matrix()
    out[:3, 3] = [0.05, -0.30, 0.40]
    return out


def _random_similarity(rng: np.random.Generator, scale: float) -> np.ndarray:
    """A random rotation, the given uniform scale and a translation of a few units."""
    out = np.eye(4)
    out[:3, :3] = scale * Rotation.random(random_state=rng).as_matrix()
    out[:3, 3] = rng.uniform(-20.0, 20.0, 3)
    return out


def _scaled_camera(camera: Motion, scale: float) -> Motion:
    """The chain's world_from_camera: the true rigid pose with its 3x3 part times
    ``scale`` (the contract divides that scale out again)."""
    def motion(t: float) -> np.ndarray:
        m = np.array(camera(t), dtype=np.float64)
        m[:3, :3] *= scale
        return m
    return motion


def _sample_times(rng: np.random.Generator, start: float, end: float, rate: float,
                  jitter: float, drop: float, max_gap: float,
                  extra: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Sample times on ``[start, end]``: a jittered grid, some dropped, plus ``extra``.
    Returns the kept times (sorted) and the dropped ones."""
    period = 1.0 / rate
    count = math.floor((end - start) * rate) + 1
    times = start + period * np.arange(count)
    times[1:-1] += rng.uniform(-jitter, jitter, count - 2) * period
    keep = np.ones(count, dtype=bool)
    last_kept = times[0]
    for i in range(1, count - 1):
        if rng.random() < drop and times[i + 1] - last_kept <= 0.9 * max_gap:
            keep[i] = False
        else:
            last_kept = times[i]
    extra_times = np.asarray([t for t in extra if start <= t <= end], dtype=np.float64)
    dropped = times[~keep]
    return (np.unique(np.concatenate([times[keep], extra_times])),
            dropped[~np.isin(dropped, extra_times)])


def _fixed_poses(base: Scenario, tools: Mapping[str, Motion]) -> dict[str, np.ndarray]:
    """Untracked objects: their pose in the base's first frame (identity when absent)."""
    first = base.frames[0].poses
    return {name: np.asarray(first.get(name, np.eye(4)), dtype=np.float64)
            for name in base.objects if name not in tools}
