"""Posing Gaussians on the CPU as one compiled loop (numba): the CPU twin of the torch
ops in :func:`gs_backend.posing.pose_gaussians`.

Same map (DESIGN contract 2): mean -> s R mean + t, quat -> normalise(q_R * quat),
scale -> s * scale, each SH band l >= 1 -> D_l(R) c_l (band 0 unchanged). The small
per-pose parts (q_R, the Wigner matrices) are computed by the caller in float64; this
loop applies them to every Gaussian in float64 from float32 inputs, serially (see
:mod:`gs_backend.sh_numba` for why), instead of a dozen eager tensor ops (each a
barrier that a descheduled thread stalls on a busy machine).

Compiled code is cached on disk like the rasterizer's kernels
(:func:`gs_backend.raster.numba_cache.ensure_cache_location`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gs_backend.raster.numba_cache import ensure_cache_location

ensure_cache_location()

_QUAT_NORM_EPS = 1e-12
"""Guard of the quaternion normalisation (torch.nn.functional.normalize's default)."""


_SH_CHUNK = 64
"""Gaussians rotated together: their coefficients are transposed into a small buffer
so the inner loop runs over Gaussians (contiguous, vectorised; ~2x a per-Gaussian loop)."""


@numba.njit(cache=True)
def _rotate_sh_into(sh: np.ndarray, sh_block: np.ndarray, degree: int,
                    out_sh: np.ndarray) -> None:
    """``out_sh[i, :, c] = sh_block @ sh[i, :, c]``, band by band (the block is block
    diagonal); each output is summed in the same order as a per-Gaussian loop would."""
    k = (degree + 1) ** 2
    src = np.empty((k * 3, _SH_CHUNK))
    dst = np.empty((k * 3, _SH_CHUNK))
    for start in range(0, sh.shape[0], _SH_CHUNK):
        m = min(_SH_CHUNK, sh.shape[0] - start)
        for t in range(m):
            for j in range(k):
                for c in range(3):
                    src[j * 3 + c, t] = sh[start + t, j, c]
        for c in range(3):  # band 0 is unchanged
            dst[c, :m] = src[c, :m]
        for band in range(1, degree + 1):
            first, width = band * band, 2 * band + 1
            for a in range(first, first + width):
                for c in range(3):
                    row = dst[a * 3 + c]
                    row[:m] = 0.0
                    for j in range(first, first + width):
                        d = sh_block[a, j]
                        column = src[j * 3 + c]
                        for t in range(m):
                            row[t] += d * column[t]
        for t in range(m):
            for j in range(k):
                for c in range(3):
                    out_sh[start + t, j, c] = dst[j * 3 + c, t]


# One explicit signature, any strides ("A" layout), compiled (or loaded from the cache)
# at import.
@numba.njit("void(float32[:, :], float32[:, :], float32[:, :], float32[:, :, :], float64, "
            "float64[:, :], float64[:], float64[:], float64[:, :], int64, "
            "float32[:, :], float32[:, :], float32[:, :], float32[:, :, :])", cache=True)
def pose_into(
    means: np.ndarray,  # [N, 3] float32, asset coordinates
    quats: np.ndarray,  # [N, 4] float32 wxyz
    scales: np.ndarray,  # [N, 3] float32 linear
    sh: np.ndarray,  # [N, K, 3] float32
    scale: float,  # s > 0
    rotation: np.ndarray,  # [3, 3] float64
    translation: np.ndarray,  # [3] float64
    rotation_quat: np.ndarray,  # [4] float64 wxyz, the quaternion of ``rotation``
    sh_block: np.ndarray,  # [K, K] float64 block diagonal: 1, D_1, ..., D_d
    degree: int,  # d, K = (d + 1)^2
    out_means: np.ndarray,  # [N, 3] float32
    out_quats: np.ndarray,  # [N, 4] float32
    out_scales: np.ndarray,  # [N, 3] float32
    out_sh: np.ndarray,  # [N, K, 3] float32
) -> None:
    """Write the posed Gaussians into the ``out_*`` arrays (no aliasing with the inputs)."""
    aw, ax, ay, az = rotation_quat[0], rotation_quat[1], rotation_quat[2], rotation_quat[3]
    for i in range(means.shape[0]):
        mx, my, mz = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        for r in range(3):
            out_means[i, r] = scale * (rotation[r, 0] * mx + rotation[r, 1] * my
                                       + rotation[r, 2] * mz) + translation[r]
            out_scales[i, r] = scale * np.float64(scales[i, r])
        bw, bx, by, bz = (np.float64(quats[i, 0]), np.float64(quats[i, 1]),
                          np.float64(quats[i, 2]), np.float64(quats[i, 3]))
        qw = aw * bw - ax * bx - ay * by - az * bz
        qx = aw * bx + ax * bw + ay * bz - az * by
        qy = aw * by - ax * bz + ay * bw + az * bx
        qz = aw * bz + ax * by - ay * bx + az * bw
        norm = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), _QUAT_NORM_EPS)
        out_quats[i, 0] = qw / norm
        out_quats[i, 1] = qx / norm
        out_quats[i, 2] = qy / norm
        out_quats[i, 3] = qz / norm
    _rotate_sh_into(sh, sh_block, degree, out_sh)

