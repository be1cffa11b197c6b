"""The parsed ``gs-recording`` v1 file: frozen dataclasses built only by
:func:`gs_contract.recording.parse.read_recording`, which has checked every field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from gs_contract.pose import Similarity
from gs_contract.recording.images import RecordedImage
from gs_contract.recording.tracking import SensorTrack
from gs_contract.scenario.model import Scenario

RECORDING_FORMAT: Final = "gs-recording"
RECORDING_VERSION: Final = 1
# Used when a recording has no ``max_gap_s``: 4 samples of a 40 Hz tracker.
DEFAULT_MAX_GAP_S: Final = 0.1

TOP_LEVEL_KEYS = frozenset({"format", "version", "base", "tracking", "images", "clock_offset_s",
                            "max_gap_s", "world_from_tracker", "camera", "objects", "meta"})
TRACKING_KEYS = frozenset({"file", "format", "frame_rate_hz"})
IMAGES_KEYS = frozenset({"file"})
CAMERA_KEYS = frozenset({"width", "height", "K", "sensor", "sensor_from_camera"})
OBJECT_KEYS = frozenset({"pose", "sensor", "sensor_from_asset"})


@dataclass(frozen=True)
class RecordedCamera:
    """The tracked camera: image size, intrinsics ``K`` ``[3, 3]`` (pixels, scenario
    convention), its sensor and the hand-eye calibration ``sensor_from_camera`` (camera =
    OpenCV optical frame)."""

    width: int
    height: int
    K: np.ndarray
    sensor: str
    sensor_from_camera: Similarity


@dataclass(frozen=True)
class RecordedObject:
    """A base-scenario object: either fixed (``pose`` = world_from_asset) or carried by a
    sensor (``sensor`` and ``sensor_from_asset``)."""

    name: str
    pose: Similarity | None = None
    sensor: str | None = None
    sensor_from_asset: Similarity | None = None


@dataclass(frozen=True)
class Recording:
    """A validated recording.

    Attributes:
        path: the recording file (absolute).
        base: the base scenario (classes, assets, objects, render, output; its frames are
            not used).
        tracking_file, images_file: the tables (absolute).
        tracking_format: a key of :data:`~gs_contract.recording.tracking.TRACKING_FORMATS`.
        frame_rate_hz: the tracker's frame rate, for formats that count frames (else None).
        tracks: per sensor, its samples (only the sensors the recording uses are checked
            to exist; others are kept).
        images: the images, sorted by time.
        clock_offset_s: image timestamp + offset = tracker timestamp.
        max_gap_s: no interpolation across a longer gap between two samples.
        world_from_tracker: a similarity (may scale tracker units into world units).
        camera: the tracked camera.
        objects: one per base object, in the base's order.
    """

    path: Path
    base: Scenario
    tracking_file: Path
    tracking_format: str
    frame_rate_hz: float | None
    tracks: dict[str, SensorTrack]
    images_file: Path
    images: tuple[RecordedImage, ...]
    clock_offset_s: float
    max_gap_s: float
    world_from_tracker: Similarity
    camera: RecordedCamera
    objects: dict[str, RecordedObject]
