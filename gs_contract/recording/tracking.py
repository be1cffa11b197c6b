"""Tracker files -> one track of samples per sensor (DESIGN contract 8).

``tracking.format`` ``"csv"``: a header ``timestamp,sensor,qw,qx,qy,qz,tx,ty,tz`` and one
row per sample: the tracker time in seconds, the sensor's name, and ``tracker_from_sensor``
as a unit quaternion (w first, either sign) and a translation in tracker units.

Rules (docs/replay.md):

- rows may come in any order and sensors interleaved; each sensor's samples are sorted
  by time. Two samples of one sensor at the same time are refused (both lines named).
- a row whose seven pose cells are all empty (or all ``nan``) is a missing sample and is
  skipped; a missing sample may also simply have no row.
- quaternions are normalised when their norm is within :data:`QUATERNION_NORM_TOLERANCE`
  of 1 (trackers write a few decimals); farther from 1 the row is refused, since such a
  quaternion is no rotation (a shifted column, a corrupt row).
- every other problem names the file, the line and the column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gs_contract.errors import InputError
from gs_contract.recording.csvtable import CsvRow, read_csv_rows

# Largest | |q| - 1 | accepted (and normalised away) for a sample's quaternion.
QUATERNION_NORM_TOLERANCE = 1e-2
CSV_COLUMNS = ("timestamp", "sensor", "qw", "qx", "qy", "qz", "tx", "ty", "tz")
POSE_COLUMNS = CSV_COLUMNS[2:]


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


def read_tracking(path: Path, format: str) -> dict[str, SensorTrack]:
    """The tracks in the tracker file ``path`` of ``format`` (one of :data:`TRACKING_FORMATS`),
    keyed by sensor name in order of first appearance.

    Raises:
        InputError: an unknown format; a bad row (naming the file, the line number and
            the column); a file without any sample.
    """
    reader = TRACKING_FORMATS.get(format)
    if reader is None:
        raise InputError(path, None, f"unknown tracking format {format!r}; known: "
                                     f"{sorted(TRACKING_FORMATS)}")
    samples: dict[str, _Samples] = {}
    for sensor, time_s, pose, line in reader(Path(path)):
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
        raise InputError(path, f"line {lines[i + 1]}, column timestamp",
                         f"sensor {sensor!r} has two samples at time {float(times[i])!r} s "
                         f"(lines {lines[i]} and {lines[i + 1]})")
    return SensorTrack(sensor, times, poses[:, :4], poses[:, 4:], lines)


def unit_quaternion(row: CsvRow, wxyz: list[float], columns: tuple[str, ...]) -> list[float]:
    """``wxyz`` normalised, or a refusal naming the row when its norm is not near 1."""
    norm = math.sqrt(sum(x * x for x in wxyz))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise row.fail("/".join(columns),
                       f"quaternion norm {norm:.6g} is not 1 (within "
                       f"{QUATERNION_NORM_TOLERANCE}); not a rotation")
    return [x / norm for x in wxyz]


# One sample as a format reader yields it: sensor, time (s), [qw, qx, qy, qz, tx, ty, tz]
# (quaternion already unit), line number.
SampleRow = tuple[str, float, list[float], int]


def _read_csv(path: Path) -> Iterator[SampleRow]:
    """The samples of a ``"csv"`` tracker file: (sensor, time, [qw..tz], line)."""
    for row in read_csv_rows(path, CSV_COLUMNS):
        if all(row.cells[c].lower() in ("", "nan") for c in POSE_COLUMNS):
            continue  # a missing sample
        time_s = row.number("timestamp")
        sensor = row.text("sensor")
        values = [row.number(c) for c in POSE_COLUMNS]
        quaternion = unit_quaternion(row, values[:4], POSE_COLUMNS[:4])
        yield sensor, time_s, quaternion + values[4:], row.line


TRACKING_FORMATS: dict[str, Callable[[Path], Iterator[SampleRow]]] = {"csv": _read_csv}
