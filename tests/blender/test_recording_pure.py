"""gs_contract.recording under Blender's Python and numpy (1.26 on Blender 4.2-5.0): a
recording written here replays, and its poses agree with Blender's own quaternion slerp
(``mathutils.Quaternion.slerp``, single precision; it blends linearly below about 0.01 rad,
so the samples here lie 0.15 rad apart) pushed through the calibration chain.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mathutils import Matrix, Quaternion

from gs_contract.recording import replay_file, write_replay_scenario
from gs_contract.scenario import load_scenario

SAMPLE_TIMES = np.arange(0.0, 0.5, 0.025)
IMAGE_TIMES = np.array([0.0, 0.0371, 0.2, 0.3333, 0.475])  # tracker clock
OFFSET_S = 0.25


def random_similarity(rng: np.random.Generator, scale: float) -> np.ndarray:
    q = Quaternion(rng.normal(size=4).tolist())
    q.normalize()
    out = np.eye(4)
    out[:3, :3] = scale * np.array(q.to_matrix())
    out[:3, 3] = rng.uniform(-10, 10, 3)
    return out


def write_recording(folder: Path, rng: np.random.Generator) -> tuple[Path, dict]:
    for name in ("tissue.ply", "tool.ply"):
        (folder / "assets").mkdir(exist_ok=True)
        (folder / "assets" / name).write_bytes(b"")  # parsing only checks they exist
    base = {"format": "gs-scenario", "version": 1, "classes": ["tool"],
            "assets": {"tissue": {"ply": "assets/tissue.ply"},
                       "tool": {"ply": "assets/tool.ply"}},
            "objects": {"scene": {"asset": "tissue", "role": "background"},
                        "driver": {"asset": "tool", "role": "instrument", "class": "tool"}}}
    (folder / "base.json").write_text(json.dumps(base), encoding="utf-8")
    samples = {}
    rows = ["timestamp,sensor,qw,qx,qy,qz,tx,ty,tz"]
    for sensor in ("cam", "tool_1"):
        axis = rng.normal(size=3)
        start = Quaternion(rng.normal(size=4).tolist()).normalized()
        quats, translations = [], []
        for t in SAMPLE_TIMES:
            q = start @ Quaternion(axis.tolist(), 6.0 * t)  # 0.15 rad a sample
            quats.append(np.array(q) * rng.choice([-1.0, 1.0]))
            translations.append(rng.uniform(-100.0, 100.0, 3))  # millimetres
        samples[sensor] = (quats, translations)
        rows += [",".join([repr(float(t)), sensor, *map(repr, map(float, q)),
                           *map(repr, map(float, p))])
                 for t, q, p in zip(SAMPLE_TIMES, quats, translations, strict=True)]
    rows = [rows[0], *rng.permutation(rows[1:])]
    (folder / "poses.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "frames.csv").write_text(
        "name,timestamp\n" + "".join(f"img_{i}.png,{t - OFFSET_S!r}\n"
                                     for i, t in enumerate(IMAGE_TIMES)), encoding="utf-8")
    world = random_similarity(rng, 0.001)
    calib = {"cam": random_similarity(rng, 1000.0), "tool_1": random_similarity(rng, 2.0)}
    recording = {
        "format": "gs-recording", "version": 1, "base": "base.json",
        "tracking": {"file": "poses.csv", "format": "csv"}, "images": {"file": "frames.csv"},
        "clock_offset_s": OFFSET_S, "max_gap_s": 0.03, "world_from_tracker": world.tolist(),
        "camera": {"width": 64, "height": 48, "K": [[50, 0, 32], [0, 50, 24], [0, 0, 1]],
                   "sensor": "cam", "sensor_from_camera": calib["cam"].tolist()},
        "objects": {"scene": {"pose": np.eye(4).tolist()},
                    "driver": {"sensor": "tool_1",
                               "sensor_from_asset": calib["tool_1"].tolist()}},
    }
    path = folder / "recording.json"
    path.write_text(json.dumps(recording), encoding="utf-8")
    return path, {"samples": samples, "world": world, "calib": calib}


def blender_tracker_from_sensor(samples: tuple, t: float) -> np.ndarray:
    """mathutils' slerp between the bracketing samples, linear translation."""
    quats, translations = samples
    i = min(int(np.searchsorted(SAMPLE_TIMES, t, side="right")) - 1, len(SAMPLE_TIMES) - 2)
    u = (t - SAMPLE_TIMES[i]) / (SAMPLE_TIMES[i + 1] - SAMPLE_TIMES[i])
    q = Quaternion(quats[i].tolist()).slerp(Quaternion(quats[i + 1].tolist()), u)
    out = np.array(Matrix.Translation(((1 - u) * translations[i]
                                       + u * translations[i + 1]).tolist())
                   @ q.to_matrix().to_4x4())
    return out


def test_replay_under_blenders_numpy_matches_mathutils(tmp_path: Path) -> None:
    path, truth = write_recording(tmp_path, np.random.default_rng(4))
    replay = replay_file(path)
    assert replay.image_names == tuple(f"img_{i}" for i in range(len(IMAGE_TIMES)))
    np.testing.assert_allclose(replay.image_times_s, IMAGE_TIMES - OFFSET_S, atol=1e-12)
    world, calib = truth["world"], truth["calib"]
    for frame, t in zip(replay.scenario["frames"], IMAGE_TIMES, strict=True):
        tool = world @ blender_tracker_from_sensor(truth["samples"]["tool_1"], t) \
            @ calib["tool_1"]
        np.testing.assert_allclose(frame["poses"]["driver"], tool, atol=2e-5)
        camera = world @ blender_tracker_from_sensor(truth["samples"]["cam"], t) @ calib["cam"]
        camera[:3, :3] /= np.cbrt(np.linalg.det(camera[:3, :3]))  # scale 1 here anyway
        np.testing.assert_allclose(frame["camera"]["world_to_camera"], np.linalg.inv(camera),
                                   atol=2e-5)
    out = tmp_path / "replayed" / "scenario.json"
    write_replay_scenario(replay, out)
    assert [f.name for f in load_scenario(out).frames] == list(replay.image_names)
