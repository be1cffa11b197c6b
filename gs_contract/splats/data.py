"""The one in-memory form of a Gaussian file, shared by the backend and the add-on.

Conventions (DESIGN contract 2): means in the file's own (Inria PLY) coordinates,
quaternions wxyz, *linear* scales, opacities after the sigmoid, SH ``[N, K, 3]`` with the
DC term first (display colour ``0.5 + SH_C0 * sh[:, 0]``). Every reader returns every
row of the file, unusable ones included; :func:`usable_rows` is the single rule, used by
the backend's loader and the add-on's proxy builder alike, for which rows to drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

SplatFormat = Literal["inria_ply", "compressed_ply", "splat", "spz"]

SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi)): colour = 0.5 + SH_C0 * f_dc
OPACITY_MIN = float(np.finfo(np.float32).tiny)  # 2^-126: logit = -87.3
OPACITY_MAX = 1.0 - 2.0**-24  # largest float32 below 1: logit = 16.64
SCALE_MIN = float(np.finfo(np.float32).tiny)  # the writer's floor, so log stays finite
# A quaternion whose float64 norm is this close to 1 is unit to float32 precision and is
# kept bit for bit (so files round-trip exactly); any other is divided by its norm.
QUAT_UNIT_TOLERANCE = 2.0**-20
SH_COEFFS_OF_DEGREE = {0: 1, 1: 4, 2: 9, 3: 16}  # coefficients per channel


@dataclass(frozen=True, eq=False)
class SplatData:
    """Every row of one Gaussian file, decoded.

    Attributes:
        path: the file read (absolute).
        format: the detected format.
        means: ``[N, 3]`` float32 centres in the file's coordinates (Inria PLY axes; a
            ``.spz`` is converted from its own axes, see :mod:`gs_contract.splats.spz`).
        quats: ``[N, 4]`` float32 rotations wxyz as decoded (not normalised; see
            :func:`normalise_quaternions`).
        scales: ``[N, 3]`` float32 linear standard deviations.
        opacities: ``[N]`` float32 in ``[OPACITY_MIN, OPACITY_MAX]`` (NaN stays NaN).
        sh: ``[N, K, 3]`` float32 SH coefficients, DC first. K is
            ``(sh_degree + 1)^2``, or 1 when the file was read with ``dc_only``.
        sh_degree: 0-3, the file's SH degree (also when only the DC term was read).
        finite: ``[N]`` bool, True where every value the row holds in the file (higher
            SH bands included, even when not returned) decodes to a finite number.
        encoding: how the body is stored: a PLY encoding (``ascii``,
            ``binary_little_endian``, ``binary_big_endian``), ``binary_little_endian``
            for ``.splat``, ``gzip`` or ``zstd`` for ``.spz``.
        has_normals: the PLY declares ``nx ny nz`` (ignored).
        antialiased: the file says it was trained with anti-aliasing (``.spz`` flag).
        version: the ``.spz`` format version; None for the other formats.
    """

    path: str
    format: SplatFormat
    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    sh_degree: int
    finite: np.ndarray
    encoding: str
    has_normals: bool = False
    antialiased: bool = False
    version: int | None = None

    @property
    def count(self) -> int:
        """Rows in the file."""
        return int(self.means.shape[0])

    def dc_colors(self) -> np.ndarray:
        """``[N, 3]`` float32 display colours ``clip(0.5 + SH_C0 * sh[:, 0], 0, 1)``."""
        return np.clip(0.5 + SH_C0 * self.sh[:, 0, :], 0.0, 1.0).astype(np.float32, copy=False)


def usable_rows(splat: SplatData) -> np.ndarray:
    """``[N]`` bool: the rows worth rendering or showing.

    A row is unusable when a value it holds is NaN or +-inf in the file, when a decoded
    value is not finite (e.g. a log scale above 88.7 overflows float32), or when its
    quaternion is zero (no rotation). The backend drops exactly these rows and the
    add-on leaves them out of the proxy, so ``keep`` indices agree on both sides.
    """
    return splat.finite & quaternion_norms_usable(splat.quats)


def quaternion_norms_usable(quats: np.ndarray) -> np.ndarray:
    """``[N]`` bool, True where the ``[N, 4]`` quaternion has a finite non-zero norm."""
    norm = _norms(quats)
    return np.isfinite(norm) & (norm > 0)


def _norms(quats: np.ndarray) -> np.ndarray:
    q64 = quats.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.einsum("ij,ij->i", q64, q64))


def normalise_quaternions(quats: np.ndarray) -> np.ndarray:
    """Unit quaternions, the norm taken in float64.

    Args:
        quats: ``[N, 4]`` float32, any norm.

    Returns:
        ``[N, 4]`` float32; rows within :data:`QUAT_UNIT_TOLERANCE` of unit norm are
        returned unchanged (bit for bit), zero or non-finite rows are left as they were.
    """
    norm = _norms(quats)
    rescale = np.isfinite(norm) & (norm > 0) & (np.abs(norm - 1.0) > QUAT_UNIT_TOLERANCE)
    if not rescale.any():
        return quats
    out = quats.copy()
    out[rescale] = (quats[rescale].astype(np.float64) / norm[rescale, None]).astype(np.float32)
    return out


# ------------------------------------------------------------------- value conversions


def scales_from_log(log_scales: np.ndarray) -> np.ndarray:
    """Linear float32 scales from stored logs, exponentiated in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(log_scales.astype(np.float64)).astype(np.float32)


def log_from_scales(scales: np.ndarray) -> np.ndarray:
    """Stored float32 logs of linear scales (floored at 2^-126 so the log is finite)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.maximum(scales.astype(np.float64), SCALE_MIN)).astype(np.float32)


def clamp_opacities(opacities: np.ndarray) -> np.ndarray:
    """Opacities clamped into [2^-126, 1 - 2^-24] (NaN stays NaN), float32.

    The bounds keep a later logit finite: 2^-126 is invisible (the rasterizer skips
    alpha < 1/255) and 1 - 2^-24 is fully opaque to float32 precision.
    """
    return np.clip(opacities.astype(np.float64), OPACITY_MIN, OPACITY_MAX).astype(np.float32)


def opacities_from_logits(logits: np.ndarray) -> np.ndarray:
    """Float32 opacities in [2^-126, 1 - 2^-24] from stored logits (sigmoid in float64)."""
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return clamp_opacities(p)


def logits_from_opacities(opacities: np.ndarray) -> np.ndarray:
    """Stored float32 logits of opacities (clamped as in :func:`clamp_opacities`)."""
    p = np.clip(opacities.astype(np.float64), OPACITY_MIN, OPACITY_MAX)
    with np.errstate(invalid="ignore"):
        return (np.log(p) - np.log1p(-p)).astype(np.float32)


def sh_degree_of_rest_count(rest: int) -> int | None:
    """SH degree of a file with ``rest`` higher-band coefficients in all (3 per
    coefficient), or None when no degree 0-3 fits."""
    for degree, k in SH_COEFFS_OF_DEGREE.items():
        if rest == 3 * (k - 1):
            return degree
    return None
