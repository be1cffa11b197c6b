"""Scenario poses: the similarity check, validated once when a scenario is read.

A scenario pose is a 4x4 row-major matrix that maps an asset's own (PLY) coordinates
to world coordinates (DESIGN contract 1). Its 3x3 part may carry a uniform positive
scale; anything else (shear, non-uniform scale, mirror, zero scale) is refused here,
with the source file, the field (``frames[3].poses.driver``) and the measured
anisotropy. The accepted pose is returned as a :class:`Similarity` (s, R, t), which
the backend's posing consumes as it is (``gs_backend.posing.pose_gaussians``) and the
Blender add-on uses to check an export before writing it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.errors import PoseError

# sigma_max / sigma_min - 1 of a pose's 3x3 part up to which it counts as a similarity:
# float32 matrices exported by Blender show about 1e-7.
ANISOTROPY_TOLERANCE = 1e-4

MatrixLike = Sequence[Sequence[float]] | np.ndarray


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation.

    Attributes:
        scale: uniform scale, > 0.
        rotation: ``[3, 3]`` float64 proper rotation.
        translation: ``[3]`` float64.
    """

    scale: float
    rotation: np.ndarray  # [3, 3]
    translation: np.ndarray  # [3]

    def matrix(self) -> np.ndarray:
        """The ``[4, 4]`` float64 homogeneous matrix."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def is_identity(self) -> bool:
        """True when the pose is exactly the identity (no rounding allowed)."""
        return (self.scale == 1.0 and bool(np.array_equal(self.rotation, np.eye(3)))
                and not bool(np.any(self.translation)))


def similarity_from_matrix(
    matrix: MatrixLike | Any,  # [4, 4] row-major, asset (PLY) coordinates -> world
    *,
    source: str | Path,
    field: str,
    tolerance: float = ANISOTROPY_TOLERANCE,
) -> Similarity:
    """Split a pose matrix into (scale, rotation, translation), or refuse it.

    The 3x3 part A is decomposed by SVD, A = U diag(sigma) V^T. Its anisotropy
    sigma_max / sigma_min - 1 is 0 for a similarity; anything up to ``tolerance`` is
    accepted and the nearest similarity is kept: rotation U V^T, scale mean(sigma).

    Raises:
        PoseError: naming ``source`` and ``field``, for a wrong shape, non-finite
            entries, a last row other than [0, 0, 0, 1], a singular (zero-scale)
            3x3 part, shear or non-uniform scale (with the anisotropy), or a
            negative determinant (mirror or negative scale).
    """

    def refuse(problem: str, anisotropy: float | None = None) -> PoseError:
        return PoseError(source, field, problem, anisotropy=anisotropy)

    try:
        given = np.asarray(matrix)
        if given.dtype.kind not in "iuf":  # strings, booleans, objects: not numbers
            raise TypeError(f"got {given.dtype.name} entries")
        m = given.astype(np.float64)
    except (TypeError, ValueError, OverflowError) as error:
        raise refuse(f"expected a 4x4 matrix of numbers ({error})") from None
    if m.shape != (4, 4):
        raise refuse(f"expected a 4x4 matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        bad = [f"[{i}][{j}]" for i, j in np.argwhere(~np.isfinite(m))]
        raise refuse(f"non-finite entries at {', '.join(bad)}")
    last_row = m[3]
    if np.abs(last_row - [0.0, 0.0, 0.0, 1.0]).max() > tolerance:
        raise refuse(f"last row must be [0, 0, 0, 1], got {last_row.tolist()}")

    linear = m[:3, :3]
    u, sigma, vt = np.linalg.svd(linear)
    sigma_max, sigma_min = float(sigma[0]), float(sigma[-1])
    if sigma_max <= 0.0:
        raise refuse("zero scale: the 3x3 part is all zeros")
    if sigma_min <= 0.0:
        raise refuse(
            f"zero scale: the 3x3 part is singular (scale factors {_factors(sigma)}, "
            "anisotropy infinite)",
            anisotropy=math.inf,
        )
    anisotropy = sigma_max / sigma_min - 1.0
    if anisotropy > tolerance:
        raise refuse(
            f"not a similarity: anisotropy {anisotropy:.3g} (shear or non-uniform scale)",
            anisotropy=anisotropy,
        )
    if np.linalg.det(linear) < 0.0:
        raise refuse(
            "negative determinant: a mirror or negative scale is not a valid pose "
            f"(scale factors {_factors(sigma)} with a reflection, anisotropy "
            f"{anisotropy:.3g})",
            anisotropy=anisotropy,
        )
    rotation = u @ vt  # nearest rotation; det = +1 since det(linear) > 0
    return Similarity(scale=float(sigma.mean()), rotation=rotation,
                      translation=m[:3, 3].copy())


def _factors(sigma: np.ndarray) -> str:
    """The singular values (scale factors) ``[3]`` as a short list for messages."""
    return "[" + ", ".join(f"{s:.3g}" for s in sigma) + "]"
