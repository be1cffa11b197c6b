"""Tracker files -> one track of samples per sensor (DESIGN contract 8).

Formats (``tracking.format``; docs/replay.md): ``"csv"`` (:mod:`.tracker_csv`, the
contract's own table) and ``"ndi"`` (:mod:`.tracker_ndi`, the CSV that NDI's Combined API
sample application writes for Aurora / Polaris trackers).

Whatever the format: rows may come in any order and sensors interleaved; each sensor's
samples are sorted by time, and two samples of one sensor at the same time are refused
(both lines named). Quaternions are normalised when their norm is within
:data:`~gs_contract.recording.samples.QUATERNION_NORM_TOLERANCE` of 1 and refused
otherwise. Every problem names the file, the line and the column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gs_contract.errors import InputError
from gs_contract.recording.samples import SampleRow
from gs_contract.recording.tracker_csv import read_csv_samples
from gs_contract.recording.tracker_ndi import read_ndi_samples


@dataclass(frozen=True)
class SensorTrack:
    """The samples of one sensor, sorted by time.

    Attributes:
        sensor: the sensor's name in the tracker file.
        times_s: ``(n,)`` float64 tracker times in seconds, strictly increasing.
        quaternions_wxyz: ``(n, 4)`` float64 unit quaternions of the rotation of
            ``tracker_from_sensor`` (signs as written).
        translations: ``(n, 3)`` float64 translations of ``tracker_from_sensor``
            (tracker units).
        lines: ``(n,)`` int64 the line of each sample in the file (for messages).
    """

    sensor: str
    times_s: np.ndarray
    quaternions_wxyz: np.ndarray
    translations: np.ndarray
    lines: np.ndarray


@dataclass
class _Samples:
    times: list[float]
    poses: list[list[float]]
    lines: list[int]


def read_tracking(path: Path, format: str, *,
                  frame_rate_hz: float | None = None) -> dict[str, SensorTrack]:
    """The tracks in the tracker file ``path`` of ``format`` (one of :data:`TRACKING_FORMATS`),
    keyed by sensor name in order of first appearance. ``frame_rate_hz``: the tracker's
    frame rate, for formats that count frames instead of writing times (``"ndi"``).

    Raises:
        InputError: an unknown format; a bad row (naming the file, the line number and
            the column); a file without any sample.
    """
    reader = TRACKING_FORMATS.get(format)
    if reader is None:
        raise InputError(path, None, f"unknown tracking format {format!r}; known: "
                                     f"{sorted(TRACKING_FORMATS)}")
    samples: dict[str, _Samples] = {}
    for sensor, time_s, pose, line in reader(Path(path), frame_rate_hz):
        entry = samples.setdefault(sensor, _Samples([], [], []))
        entry.times.append(time_s)
        entry.poses.append(pose)
        entry.lines.append(line)
    if not samples:
        raise InputError(path, None, "no tracker samples in the file")
    return {sensor: _track(Path(path), sensor, s) for sensor, s in samples.items()}


def _track(path: Path, sensor: str, samples: _Samples) -> SensorTrack:
    times = np.asarray(samples.times, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    times = times[order]
    poses = np.asarray(samples.poses, dtype=np.float64)[order]
    lines = np.asarray(samples.lines, dtype=np.int64)[order]
    same = np.flatnonzero(np.diff(times) == 0)
    if same.size:
        i = int(same[0])
        raise InputError(path, f"line {lines[i + 1]}",
                         f"sensor {sensor!r} has two samples at time {float(times[i])!r} s "
                         f"(lines {lines[i]} and {lines[i + 1]})")
    return SensorTrack(sensor, times, poses[:, :4], poses[:, 4:], lines)


TRACKING_FORMATS: dict[str, Callable[[Path, float | None], Iterator[SampleRow]]] = {
    "csv": read_csv_samples, "ndi": read_ndi_samples}
# Formats that count frames: their recordings give ``tracking.frame_rate_hz``.
FRAME_COUNTING_FORMATS = frozenset({"ndi"})
