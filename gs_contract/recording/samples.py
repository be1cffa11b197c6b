"""What every tracker-format reader yields, and the quaternion rule they share."""

from __future__ import annotations

import math

# Largest | |q| - 1 | accepted (and normalised away) for a sample's quaternion: trackers
# write a few decimals. Farther from 1 the sample is no rotation (a shifted column, a
# corrupt row) and is refused.
QUATERNION_NORM_TOLERANCE = 1e-2

# One sample as a format reader yields it: sensor, time (s), [qw, qx, qy, qz, tx, ty, tz]
# (the quaternion already unit), line number.
SampleRow = tuple[str, float, list[float], int]


def unit_quaternion(wxyz: list[float]) -> list[float]:
    """``wxyz`` normalised.

    Raises:
        ValueError: with the problem in plain words, when its norm is not near 1 (the
            reader turns it into an InputError naming the line and the columns).
    """
    norm = math.sqrt(sum(x * x for x in wxyz))
    if abs(norm - 1.0) > QUATERNION_NORM_TOLERANCE:
        raise ValueError(f"quaternion norm {norm:.6g} is not 1 (within "
                         f"{QUATERNION_NORM_TOLERANCE}); not a rotation")
    return [x / norm for x in wxyz]
