"""A sensor's pose at any time between its samples: slerp of the rotation (shortest arc)
and linear translation (DESIGN contract 8).

A time outside the sensor's samples, or between two samples further apart than
``max_gap_s``, is refused naming the image and the sensor. A time equal to a sample's
returns that sample exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gs_contract.errors import InputError
from gs_contract.recording.tracking import SensorTrack


@dataclass(frozen=True)
class Bracket:
    """Where a time falls among a track's samples.

    Attributes:
        index: the sample at or just before the time.
        fraction: in [0, 1): how far the time lies towards sample ``index + 1``
            (0 for a time equal to sample ``index``).
        gap_s: the time between the two bracketing samples (0 for an exact sample time).
    """

    index: int
    fraction: float
    gap_s: float


def bracket(track: SensorTrack, t_s: float, max_gap_s: float, *, image: str,
            source: str | Path = "tracking") -> Bracket:
    """The samples of ``track`` around tracker time ``t_s``.

    Raises:
        InputError: naming ``source``, the image and the sensor, when ``t_s`` is outside
            the samples or the two samples around it are more than ``max_gap_s`` apart.
    """
    times = track.times_s
    where = f"image {image!r}, sensor {track.sensor!r}"
    index = int(np.searchsorted(times, t_s, side="right")) - 1
    if index < 0 or (index == len(times) - 1 and t_s != times[-1]):
        raise InputError(source, where,
                         f"tracker time {t_s:.6f} s is outside the sensor's samples "
                         f"({times[0]:.6f} s to {times[-1]:.6f} s)")
    if t_s == times[index]:
        return Bracket(index, 0.0, 0.0)
    gap = float(times[index + 1] - times[index])
    if gap > max_gap_s:
        raise InputError(source, where,
                         f"tracker time {t_s:.6f} s falls between samples at "
                         f"{times[index]:.6f} s and {times[index + 1]:.6f} s, {gap:.6f} s "
                         f"apart, more than max_gap_s {max_gap_s:g} s")
    return Bracket(index, float((t_s - times[index]) / gap), gap)


def tracker_from_sensor_at(track: SensorTrack, t_s: float, max_gap_s: float, *, image: str,
                           source: str | Path = "tracking") -> np.ndarray:
    """``tracker_from_sensor`` ``[4, 4]`` float64 (rigid, tracker units) at tracker time
    ``t_s``; refusals as :func:`bracket`."""
    return pose_at(track, bracket(track, t_s, max_gap_s, image=image, source=source))


def pose_at(track: SensorTrack, where: Bracket) -> np.ndarray:
    """``tracker_from_sensor`` ``[4, 4]`` at a :class:`Bracket` of ``track``."""
    i, u = where.index, where.fraction
    out = np.eye(4)
    if u == 0.0:
        out[:3, :3] = rotation_matrix(track.quaternions_wxyz[i])
        out[:3, 3] = track.translations[i]
        return out
    out[:3, :3] = rotation_matrix(slerp(track.quaternions_wxyz[i],
                                        track.quaternions_wxyz[i + 1], u))
    out[:3, 3] = (1.0 - u) * track.translations[i] + u * track.translations[i + 1]
    return out


def slerp(q0: np.ndarray, q1: np.ndarray, u: float) -> np.ndarray:
    """Unit quaternion ``(4,)`` wxyz a fraction ``u`` of the way from ``q0`` to ``q1``
    along the shorter arc (``q1``'s sign is flipped when the two point apart).

    Computed as q0 * exp(u * log(q0^-1 q1)), with the relative rotation's half angle
    from atan2 and sin(u h) / sin(h) through ``np.sinc``, which stays exact for tiny
    angles.
    """
    relative = quaternion_product(quaternion_conjugate(q0), q1)
    if relative[0] < 0.0:
        relative = -relative  # the same rotation, the shorter way round
    vector = relative[1:]
    half_angle = float(np.arctan2(np.linalg.norm(vector), relative[0]))
    # |vector| = sin(half_angle), so vector * sin(u h) / sin(h) has length sin(u h).
    ratio = u * np.sinc(u * half_angle / np.pi) / np.sinc(half_angle / np.pi)
    step = np.concatenate([[np.cos(u * half_angle)], vector * ratio])
    out = quaternion_product(q0, step)
    return out / np.linalg.norm(out)


def quaternion_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` of two ``(4,)`` wxyz quaternions."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw])


def quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    """The conjugate (inverse of a unit quaternion) of a ``(4,)`` wxyz quaternion."""
    return np.array([q[0], -q[1], -q[2], -q[3]])


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """``[3, 3]`` rotation of a unit ``(4,)`` wxyz quaternion (either sign, same matrix)."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
