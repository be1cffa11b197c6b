"""The demo's tracked recording: the paper's validation path (section 2.5, 3.1) end to end.

A lab records a video while an EM tracker follows a sensor on the endoscope and one on
each instrument. The demo makes such a recording of its own scene with known ground
truth (:func:`gs_backend.synthetic.recording.make_recording` over
:func:`~gs_backend.synthetic.recording.demo_motions`: a tracker in millimetres at about
40 Hz with jitter and missing samples, hand-eye calibrations) and a "real" video for it
at 30 fps on its own clock (the recording's clock offset relates the two): the scene
rendered at the TRUE poses of each image (the continuous motion, not the samples),
then passed through a simple camera model (:func:`camera_effects`: exposure and colour
gain, vignetting, lens blur, sensor noise), so the video differs from any splat render
the way a real endoscope's images do, in kind if not in amount.

Layout under ``out/recording/``::

    recording.json, poses.csv, frames.csv   the recording (gs-recording v1)
    truth_scenario.json                     the true poses at the images (for reference)
    truth/                                  the splat render of the truth (a dataset)
    video/<image>.png                       the "real" video: truth + camera effects

The demo then replays the recording (``gs-backend replay``), renders the replayed
scenario and compares it with the video (``gs-backend evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gs_backend.synthetic.recording import GroundTruth, demo_motions, make_recording
from gs_contract.atomic import write_bytes_atomic
from gs_contract.scenario import load_scenario, write_scenario_file

RECORDING_FOLDER = "recording"
TRUTH_SCENARIO = "truth_scenario.json"
VIDEO_FOLDER = "video"
DURATION_S = 4.0  # tracker time over which the demo's whole motion plays
VIDEO_FPS = 30.0
# An EM tracker's jitter, about (a sensor's RMS error is typically 0.5-1 mm, 0.3-0.5 deg;
# these are per-sample standard deviations).
TRACKER_NOISE_MM = 0.3
TRACKER_NOISE_DEG = 0.15


@dataclass(frozen=True)
class DemoRecording:
    """Paths of the demo's recording (see the module docstring)."""

    recording: Path
    truth_scenario: Path
    video: Path
    ground_truth: GroundTruth


def write_demo_recording(out_dir: Path, base_scenario: Path, *, images: int = 12,
                         video_fps: float = VIDEO_FPS, start_s: float = 1.0,
                         seed: int = 0) -> DemoRecording:
    """Write the recording and the truth scenario; the video comes from
    :func:`write_video` once the truth is rendered.

    Args:
        out_dir: the demo's folder; everything goes into ``out_dir/recording``.
        base_scenario: the demo's scenario (classes, assets, objects, render, output).
        images: number of consecutive video images.
        video_fps: the video's frame rate (its clock is not the tracker's: the
            recording's clock offset relates them).
        start_s: tracker time of the first image (the tracker runs over 0 to
            :data:`DURATION_S`, the demo's whole motion).
    """
    folder = Path(out_dir) / RECORDING_FOLDER
    camera, tools = demo_motions(DURATION_S)
    times = start_s + np.arange(images) / video_fps
    if times[-1] >= DURATION_S:
        raise ValueError(f"{images} images at {video_fps} fps from {start_s} s end after "
                         f"the tracked {DURATION_S} s")
    truth = make_recording(folder, base_scenario, camera=camera, tools=tools,
                           image_times_s=times, tracker_start_s=0.0,
                           tracker_end_s=DURATION_S, noise_translation=TRACKER_NOISE_MM,
                           noise_rotation_deg=TRACKER_NOISE_DEG, seed=seed)
    base = load_scenario(base_scenario)
    first = base.frames[0].camera
    frames = [{"name": name,
               "camera": {"width": first.width, "height": first.height,
                          "K": first.K.tolist(), "world_to_camera": truth.world_to_camera[i]
                          .tolist()},
               "poses": {obj: truth.poses[obj][i].tolist() for obj in base.objects}}
              for i, name in enumerate(truth.image_names)]
    scenario = dict(base.raw)
    scenario["assets"] = {
        name: {"ply": str(spec.ply)} | ({"keep": spec.keep.tolist()}
                                         if spec.keep is not None else {})
        for name, spec in base.assets.items()}
    scenario["frames"] = frames
    truth_path = folder / TRUTH_SCENARIO
    write_scenario_file(scenario, truth_path)
    return DemoRecording(truth.recording, truth_path, folder / VIDEO_FOLDER, truth)


def camera_effects(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a real camera does to the light the scene sends it, roughly.

    Args:
        rgb: ``[H, W, 3]`` float in [0, 1], the ideal image.
        rng: noise source.

    Returns:
        ``[H, W, 3]`` uint8: exposure 1.08, a warm colour gain, a vignette to 75% at the
        corners, a lens blur (Gaussian, sigma 0.9 px) and sensor noise (sigma 1.5%).
    """
    height, width = rgb.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2
    vignette = 1.0 - 0.125 * r2
    image = rgb.astype(np.float32) * 1.08 * np.array([1.04, 1.0, 0.93], np.float32)
    image = image * vignette[:, :, None]
    image = cv2.GaussianBlur(image, (0, 0), 0.9)
    image = image + rng.normal(0.0, 0.015, image.shape).astype(np.float32)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def write_video(truth_images: list[Path], video: Path, *, seed: int = 0) -> list[Path]:
    """The "real" video: each truth render through :func:`camera_effects`, written as
    ``video/<stem>.png`` (atomic writes). Returns the written paths."""
    rng = np.random.default_rng(seed)
    video.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(truth_images):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise RuntimeError(f"{path}: could not read the truth render")
        rgb = bgr[:, :, ::-1].astype(np.float32) / 255.0
        out = camera_effects(rgb, rng)[:, :, ::-1]
        ok, png = cv2.imencode(".png", out)
        if not ok:
            raise RuntimeError(f"{path}: OpenCV could not encode the video image")
        target = video / f"{path.stem}.png"
        write_bytes_atomic(target, png.tobytes())
        written.append(target)
    return written
