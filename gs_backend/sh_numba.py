"""Gaussian colours on the CPU as one compiled loop (numba): the CPU twin of
:func:`gs_backend.sh.gaussian_colors`.

The eager torch evaluation is some forty small tensor ops per object and frame, each a
parallel region whose barrier waits for a thread the OS has descheduled: on a busy
2-core machine that took the 200k-Gaussian demo from ~7 ms to ~150 ms of colours per
frame. This kernel is one serial loop over the Gaussians (~3.5 ms for 160k degree-1 plus
40k degree-3 Gaussians; a parallel loop was faster on a quiet machine but stalled
~20 ms per call whenever another process held a core, and meanwhile the dataset
writer's thread has the other core), computed in float64 from float32 inputs, with the
basis, the ``+ 0.5`` offset and the ``clamp_min(0)`` of :mod:`gs_backend.sh` (DESIGN
contract 3). It writes into a caller's array, so colours go straight into a column
slice of the rasterizer's feature array.

Compiled code is cached on disk like the rasterizer's kernels
(:func:`gs_backend.raster.numba_cache.ensure_cache_location`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gs_backend.gaussians import SH_C0
from gs_backend.raster.numba_cache import ensure_cache_location
from gs_backend.sh import (
    NORMALIZE_EPS,
    SH_C1,
    SH_C2A,
    SH_C2B,
    SH_C2C,
    SH_C3A,
    SH_C3B,
    SH_C3C,
    SH_C3D,
    SH_C3E,
)

ensure_cache_location()


_CHUNK = 64
"""Gaussians evaluated together: first their basis values (a ``[K, 64]`` buffer, one
loop over Gaussians per step), then the coefficient sums."""


# One explicit signature, any strides ("A" layout): C-contiguous arrays and column
# slices take the same machine code, compiled (or loaded from the cache) at import.
@numba.njit("void(float32[:, :, :], float32[:, :], float64[:], int64, float32[:, :])",
            cache=True)
def colors_into(
    sh: np.ndarray,  # [N, K, 3] float32, K >= (degree + 1)^2
    means: np.ndarray,  # [N, 3] float32 world positions
    center: np.ndarray,  # [3] float64 camera centre
    degree: int,  # 0..3
    out: np.ndarray,  # [N, 3] float32, any strides (e.g. columns of a feature array)
) -> None:
    """``out[i] = clamp_min(SH_i(means[i] - center) + 0.5, 0)`` with bands 0..degree.

    The direction is normalised with the same guard as :func:`gs_backend.sh.sh_basis`
    (a zero direction evaluates the basis at (0, 0, 0)). NaN stays NaN.
    """
    k = (degree + 1) ** 2
    basis = np.empty((k, _CHUNK))
    for start in range(0, means.shape[0], _CHUNK):
        m = min(_CHUNK, means.shape[0] - start)
        for t in range(m):
            i = start + t
            dx = np.float64(means[i, 0]) - center[0]
            dy = np.float64(means[i, 1]) - center[1]
            dz = np.float64(means[i, 2]) - center[2]
            norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), NORMALIZE_EPS)
            x, y, z = dx / norm, dy / norm, dz / norm
            basis[0, t] = SH_C0
            if degree >= 1:
                basis[1, t] = -SH_C1 * y
                basis[2, t] = SH_C1 * z
                basis[3, t] = -SH_C1 * x
            if degree >= 2:
                xx, yy, zz = x * x, y * y, z * z
                basis[4, t] = SH_C2A * x * y
                basis[5, t] = -SH_C2A * y * z
                basis[6, t] = SH_C2B * (3.0 * zz - 1.0)
                basis[7, t] = -SH_C2A * x * z
                basis[8, t] = SH_C2C * (xx - yy)
            if degree >= 3:
                five_zz_minus_1 = 5.0 * zz - 1.0
                basis[9, t] = -SH_C3A * y * (3.0 * xx - yy)
                basis[10, t] = SH_C3B * x * y * z
                basis[11, t] = -SH_C3C * y * five_zz_minus_1
                basis[12, t] = SH_C3D * z * (5.0 * zz - 3.0)
                basis[13, t] = -SH_C3C * x * five_zz_minus_1
                basis[14, t] = SH_C3E * z * (xx - yy)
                basis[15, t] = -SH_C3A * x * (xx - 3.0 * yy)
        for t in range(m):
            i = start + t
            r, g, b = 0.0, 0.0, 0.0
            for j in range(k):
                y_j = basis[j, t]
                r += y_j * sh[i, j, 0]
                g += y_j * sh[i, j, 1]
                b += y_j * sh[i, j, 2]
            # clamp_min(0) of value + 0.5; NaN < 0 is False, so NaN is kept
            r, g, b = r + 0.5, g + 0.5, b + 0.5
            out[i, 0] = 0.0 if r < 0.0 else r
            out[i, 1] = 0.0 if g < 0.0 else g
            out[i, 2] = 0.0 if b < 0.0 else b
