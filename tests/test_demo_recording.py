"""The demo's tracked recording (gs_backend.synthetic.demo_recording): tracker jitter
shows in the replay at its own size, and the "real" video's camera model."""

from __future__ import annotations

import numpy as np
import pytest

from gs_backend.synthetic.demo_recording import (
    TRACKER_NOISE_MM,
    camera_effects,
    write_demo_recording,
)
from gs_backend.synthetic.demo_scenario import build_demo
from gs_contract.recording import replay_file


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    scenario = build_demo(out, frames=2, width=64, height=48, tissue_count=2000,
                          instrument_count=1500)
    return out, scenario


def test_replay_of_the_demo_recording_is_off_by_the_tracker_jitter(demo):
    out, scenario = demo
    recording = write_demo_recording(out, scenario, images=12)
    truth = recording.ground_truth
    replay = replay_file(recording.recording)
    assert list(replay.image_names) == list(truth.image_names)
    replayed = np.array([f["camera"]["world_to_camera"] for f in replay.scenario["frames"]])
    # camera centres: C = -R^T t
    def centres(w2c: np.ndarray) -> np.ndarray:
        return -np.einsum("fji,fj->fi", w2c[:, :3, :3], w2c[:, :3, 3])

    error_mm = 1000 * np.linalg.norm(centres(replayed) - centres(truth.world_to_camera),
                                     axis=1)
    # Jitter of 0.3 mm per axis per sample (plus the rotation jitter carried through the
    # hand-eye lever) interpolated between two samples: errors of that order, not zero
    # and not centimetres.
    assert 0.05 < float(np.sqrt(np.mean(error_mm**2))) < 10 * TRACKER_NOISE_MM
    driver = np.array([f["poses"]["driver"] for f in replay.scenario["frames"]])
    assert np.abs(driver[:, :3, 3] - truth.poses["driver"][:, :3, 3]).max() < 0.01


def test_camera_effects_are_a_seeded_change_of_the_image():
    rgb = np.random.default_rng(1).uniform(0.2, 0.8, (30, 40, 3))
    first = camera_effects(rgb, np.random.default_rng(7))
    again = camera_effects(rgb, np.random.default_rng(7))
    assert first.dtype == np.uint8 and first.shape == (30, 40, 3)
    assert np.array_equal(first, again)
    ideal = np.round(rgb * 255)
    assert 1.0 < float(np.abs(first - ideal).mean()) < 40.0
    # the vignette darkens the corners relative to the centre
    flat = camera_effects(np.full((60, 80, 3), 0.5), np.random.default_rng(0)).astype(float)
    assert flat[:8, :8].mean() < flat[26:34, 36:44].mean() - 5
