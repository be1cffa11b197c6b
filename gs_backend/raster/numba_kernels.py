"""Compiled CPU kernels of the numba rasterizer: projection and tile binning.

Compositing is in :mod:`gs_backend.raster.numba_composite`.

Each kernel is one ``numba.prange`` loop (over Gaussians or over tiles), so a
frame runs in a handful of parallel regions instead of thousands of small eager
ops: a thread that the OS deschedules on a busy machine delays its own share of
the work, not a barrier after every op. Everything is computed in float64 from
float32 inputs; thresholds are gsplat's float32 constants (DESIGN contract 3).

Splat table (``SPLAT_COLUMNS`` columns per visible Gaussian):
``mean_x, mean_y`` (pixels), ``p, q, r`` (a triangular square root of the conic:
``sigma = 0.5 ((p dx + q dy)^2 + (r dy)^2)``, ``dx, dy`` = pixel centre minus the
projected centre), ``opacity`` (times the compensation in antialiased mode),
``reach2`` (twice the sigma level where alpha falls to 1/255, widened by a
margin: the ellipse every shaded pixel centre lies in), ``radius_x, radius_y``
(gsplat's opacity-aware box, whole pixels), ``depth``, ``1 / p`` and
``reach_y = sqrt(reach2) / r`` (the ellipse's half height, pixels).

``cache=True`` stores the compiled machine code next to this file (or, when that
folder is read-only, in numba's per-user cache, or when that is not writable
either, in the temp folder; ``NUMBA_CACHE_DIR`` overrides all), so compilation
(about 10 s) is paid once per machine.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numba
import numpy as np
from numba.misc.appdirs import AppDirs


def writable_folder(candidates: Iterable[Path]) -> Path | None:
    """The first candidate folder that exists or can be made and takes a file, else None."""
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                return folder
        except OSError:
            continue
    return None


def _ensure_cache_location() -> None:
    """numba refuses to compile a ``cache=True`` kernel when it has nowhere to cache it;
    give it the temp folder when neither of its own locations is writable."""
    if numba.config.CACHE_DIR:
        return
    own = (Path(__file__).parent / "__pycache__",
           Path(AppDirs(appname="numba", appauthor=False).user_cache_dir))
    if writable_folder(own) is None:
        user = os.getuid() if hasattr(os, "getuid") else "user"  # /tmp is shared on POSIX
        numba.config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"gs-backend-numba-{user}")


_ensure_cache_location()

ALPHA_THRESHOLD = float(np.float32(1.0 / 255.0))
"""gsplat's ``1.f / 255.f``: a Gaussian whose alpha is below this is skipped at a pixel."""
MAX_ALPHA = float(np.float32(0.999))
"""Alpha is clamped to this (gsplat's ``0.999f``)."""
TRANSMITTANCE_STOP = float(np.float32(1e-4))
"""A pixel stops before the Gaussian that would take its transmittance to this or below."""
MAX_EXTEND = 3.33
"""Upper bound of the bounding-box half size, in standard deviations."""
JACOBIAN_FOV_MARGIN = 0.3
"""The Jacobian's ``x/z`` is clamped ``0.3 * tan(fov_x / 2)`` beyond the image edges."""
DEPTH_ALPHA_FLOOR = 1e-10
"""Expected depth divides by ``max(alpha, this)`` (gsplat's "ED")."""
CULL_PAD_PX = 1e-3
"""Pixels: the ellipse prefilters are widened by this (far above float64 rounding)."""

SPLAT_COLUMNS = 12
(MEAN_X, MEAN_Y, ROOT_P, ROOT_Q, ROOT_R, OPACITY, REACH2, RADIUS_X, RADIUS_Y, DEPTH,
 INV_P, REACH_Y) = range(SPLAT_COLUMNS)

_LOG_THRESHOLD = math.log(ALPHA_THRESHOLD)


@numba.njit(parallel=True, cache=True, fastmath=False)
def project(
    means: np.ndarray,  # [N, 3] float32 world
    quats: np.ndarray,  # [N, 4] float32 wxyz
    scales: np.ndarray,  # [N, 3] float32 linear
    opacities: np.ndarray,  # [N] float32
    viewmat: np.ndarray,  # [4, 4] float64 world -> camera
    intrinsics: np.ndarray,  # [3, 3] float64
    width: int,
    height: int,
    near: float,
    far: float,
    eps2d: float,
    antialiased: bool,
    out: np.ndarray,  # [N, SPLAT_COLUMNS] float64, written
    visible: np.ndarray,  # [N] bool, written
) -> None:
    """EWA projection with gsplat 1.5's culling (see gs_backend/raster/projection.py)."""
    fx, fy = intrinsics[0, 0], intrinsics[1, 1]
    cx, cy = intrinsics[0, 2], intrinsics[1, 2]
    lim_x_pos = (width - cx) / fx + JACOBIAN_FOV_MARGIN * (0.5 * width / fx)
    lim_x_neg = cx / fx + JACOBIAN_FOV_MARGIN * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + JACOBIAN_FOV_MARGIN * (0.5 * height / fy)
    lim_y_neg = cy / fy + JACOBIAN_FOV_MARGIN * (0.5 * height / fy)
    for i in numba.prange(means.shape[0]):
        visible[i] = False
        mx, my, mz = float(means[i, 0]), float(means[i, 1]), float(means[i, 2])
        x = viewmat[0, 0] * mx + viewmat[0, 1] * my + viewmat[0, 2] * mz + viewmat[0, 3]
        y = viewmat[1, 0] * mx + viewmat[1, 1] * my + viewmat[1, 2] * mz + viewmat[1, 3]
        z = viewmat[2, 0] * mx + viewmat[2, 1] * my + viewmat[2, 2] * mz + viewmat[2, 3]
        if not (z >= near and z <= far):
            continue
        w, qx, qy, qz = (float(quats[i, 0]), float(quats[i, 1]), float(quats[i, 2]),
                         float(quats[i, 3]))
        inv = 1.0 / math.sqrt(w * w + qx * qx + qy * qy + qz * qz)
        w, qx, qy, qz = w * inv, qx * inv, qy * inv, qz * inv
        rot = np.empty((3, 3))
        rot[0, 0] = 1.0 - 2.0 * (qy * qy + qz * qz)
        rot[0, 1] = 2.0 * (qx * qy - w * qz)
        rot[0, 2] = 2.0 * (qx * qz + w * qy)
        rot[1, 0] = 2.0 * (qx * qy + w * qz)
        rot[1, 1] = 1.0 - 2.0 * (qx * qx + qz * qz)
        rot[1, 2] = 2.0 * (qy * qz - w * qx)
        rot[2, 0] = 2.0 * (qx * qz - w * qy)
        rot[2, 1] = 2.0 * (qy * qz + w * qx)
        rot[2, 2] = 1.0 - 2.0 * (qx * qx + qy * qy)
        rz = 1.0 / z
        tx = min(max(x * rz, -lim_x_neg), lim_x_pos)
        ty = min(max(y * rz, -lim_y_neg), lim_y_pos)
        # Rows of J M with M = R_cam R S (the covariance is M M^T).
        row_x = np.empty(3)
        row_y = np.empty(3)
        for j in range(3):
            s = float(scales[i, j])
            m0 = (viewmat[0, 0] * rot[0, j] + viewmat[0, 1] * rot[1, j]
                  + viewmat[0, 2] * rot[2, j]) * s
            m1 = (viewmat[1, 0] * rot[0, j] + viewmat[1, 1] * rot[1, j]
                  + viewmat[1, 2] * rot[2, j]) * s
            m2 = (viewmat[2, 0] * rot[0, j] + viewmat[2, 1] * rot[1, j]
                  + viewmat[2, 2] * rot[2, j]) * s
            row_x[j] = fx * rz * (m0 - tx * m2)
            row_y[j] = fy * rz * (m1 - ty * m2)
        cov_xx = row_x[0] * row_x[0] + row_x[1] * row_x[1] + row_x[2] * row_x[2]
        cov_xy = row_x[0] * row_y[0] + row_x[1] * row_y[1] + row_x[2] * row_y[2]
        cov_yy = row_y[0] * row_y[0] + row_y[1] * row_y[1] + row_y[2] * row_y[2]
        c0 = row_x[1] * row_y[2] - row_x[2] * row_y[1]
        c1 = row_x[2] * row_y[0] - row_x[0] * row_y[2]
        c2 = row_x[0] * row_y[1] - row_x[1] * row_y[0]
        det_orig = c0 * c0 + c1 * c1 + c2 * c2  # Cauchy-Binet: no cancellation
        det = det_orig + eps2d * (cov_xx + cov_yy) + eps2d * eps2d
        if not det > 0.0:
            continue
        blur_xx = cov_xx + eps2d
        blur_yy = cov_yy + eps2d
        opacity = float(opacities[i])
        if antialiased:
            opacity *= math.sqrt(det_orig / det)
        if not opacity >= ALPHA_THRESHOLD:
            continue
        level = math.log(opacity) - _LOG_THRESHOLD  # alpha >= 1/255 <=> sigma <= level
        extend = min(MAX_EXTEND, math.sqrt(2.0 * max(level, 0.0)))
        radius_x = math.ceil(extend * math.sqrt(blur_xx))
        radius_y = math.ceil(extend * math.sqrt(blur_yy))
        mean_x = fx * x * rz + cx
        mean_y = fy * y * rz + cy
        if radius_x <= 0 or radius_y <= 0:
            continue
        if mean_x + radius_x <= 0 or mean_x - radius_x >= width:
            continue
        if mean_y + radius_y <= 0 or mean_y - radius_y >= height:
            continue
        root_det_yy = math.sqrt(det * blur_yy)
        out[i, MEAN_X] = mean_x
        out[i, MEAN_Y] = mean_y
        out[i, ROOT_P] = blur_yy / root_det_yy
        out[i, ROOT_Q] = -cov_xy / root_det_yy
        out[i, ROOT_R] = 1.0 / math.sqrt(blur_yy)
        out[i, OPACITY] = opacity
        out[i, REACH2] = 2.0 * (level * (1.0 + 1e-6) + 1e-6)
        out[i, RADIUS_X] = radius_x
        out[i, RADIUS_Y] = radius_y
        out[i, DEPTH] = z
        out[i, INV_P] = root_det_yy / blur_yy
        out[i, REACH_Y] = math.sqrt(out[i, REACH2] * blur_yy)
        visible[i] = True


@numba.njit(parallel=True, cache=True)
def gather_rows(
    table: np.ndarray,  # [N, SPLAT_COLUMNS] float64
    features: np.ndarray,  # [N, D] float32
    rows: np.ndarray,  # [M] int64 rows to copy, in their new order
    with_depth: bool,
    out_table: np.ndarray,  # [M, SPLAT_COLUMNS] float64, written
    out_features: np.ndarray,  # [M, D (+1 with depth)] float32, written
) -> None:
    """Copy the listed rows (the depth appended as a last feature when asked for)."""
    n_feat = features.shape[1]
    for k in numba.prange(rows.shape[0]):
        g = rows[k]
        for c in range(SPLAT_COLUMNS):
            out_table[k, c] = table[g, c]
        for c in range(n_feat):
            out_features[k, c] = features[g, c]
        if with_depth:
            out_features[k, n_feat] = table[g, DEPTH]


@numba.njit(cache=True, inline="always")
def _row_span(splat: np.ndarray, tile_size: int, tiles_y: int) -> tuple[int, int]:
    """Tile rows ``[first, end)`` whose pixel centres the splat's ellipse reaches."""
    mean_y, radius_y = splat[MEAN_Y], splat[RADIUS_Y]
    reach_y = splat[REACH_Y] + CULL_PAD_PX
    # Tile row i holds pixel centres y in [i ts + 0.5, i ts + ts - 0.5].
    first = max(math.ceil((mean_y - reach_y - (tile_size - 0.5)) / tile_size),
                math.floor((mean_y - radius_y) / tile_size))
    end = min(math.floor((mean_y + reach_y - 0.5) / tile_size) + 1,
              math.ceil((mean_y + radius_y) / tile_size))
    return int(min(max(first, 0), tiles_y)), int(min(max(end, 0), tiles_y))


@numba.njit(cache=True, inline="always")
def _column_span(splat: np.ndarray, row: int, tile_size: int, tiles_x: int) -> tuple[int, int]:
    """Tile columns ``[first, end)`` of tile row ``row`` whose pixel centres the ellipse reaches.

    At offset dy the ellipse spans dx in ``[(-q dy - h) / p, (-q dy + h) / p]`` with
    ``h = sqrt(reach2 - (r dy)^2)``; over the row's dy range the left end is least at
    ``dy = q sqrt(reach2) / (r hypot(q, r))`` (clamped), the right end greatest at minus that.
    """
    mean_x, mean_y = splat[MEAN_X], splat[MEAN_Y]
    p, q, r, reach2 = splat[ROOT_P], splat[ROOT_Q], splat[ROOT_R], splat[REACH2]
    reach = splat[REACH_Y]
    top = row * tile_size + 0.5 - mean_y
    dy_lo = max(top, -reach)
    dy_hi = min(top + (tile_size - 1), reach)
    extreme = q * math.sqrt(reach2) / (r * math.hypot(q, r))
    dy_left = min(max(extreme, dy_lo), dy_hi)
    dy_right = min(max(-extreme, dy_lo), dy_hi)
    h_left = math.sqrt(max(reach2 - (r * dy_left) ** 2, 0.0))
    h_right = math.sqrt(max(reach2 - (r * dy_right) ** 2, 0.0))
    x_left = mean_x - (q * dy_left + h_left) / p - CULL_PAD_PX
    x_right = mean_x - (q * dy_right - h_right) / p + CULL_PAD_PX
    radius_x = splat[RADIUS_X]
    first = max(math.ceil((x_left - (tile_size - 0.5)) / tile_size),
                math.floor((mean_x - radius_x) / tile_size))
    end = min(math.floor((x_right - 0.5) / tile_size) + 1,
              math.ceil((mean_x + radius_x) / tile_size))
    return int(min(max(first, 0), tiles_x)), int(min(max(end, 0), tiles_x))


@numba.njit(parallel=True, cache=True)
def count_tiles(table: np.ndarray, depth_rows: np.ndarray, tile_size: int, tiles_x: int,
                tiles_y: int, counts: np.ndarray) -> None:
    """``counts[k]`` (written): how many tiles the k-th splat from the front reaches
    (its row in ``table``: ``depth_rows[k]``)."""
    for k in numba.prange(depth_rows.shape[0]):
        splat = table[depth_rows[k]]
        row0, row1 = _row_span(splat, tile_size, tiles_y)
        n = 0
        for row in range(row0, row1):
            col0, col1 = _column_span(splat, row, tile_size, tiles_x)
            n += max(col1 - col0, 0)
        counts[k] = n


@numba.njit(parallel=True, cache=True)
def list_tiles(table: np.ndarray, depth_rows: np.ndarray, tile_size: int, tiles_x: int,
               tiles_y: int, starts: np.ndarray, pair_tiles: np.ndarray) -> None:
    """Write the k-th splat's tiles to ``pair_tiles[starts[k]:starts[k + 1]]``."""
    for k in numba.prange(depth_rows.shape[0]):
        splat = table[depth_rows[k]]
        row0, row1 = _row_span(splat, tile_size, tiles_y)
        pair = starts[k]
        for row in range(row0, row1):
            col0, col1 = _column_span(splat, row, tile_size, tiles_x)
            for col in range(col0, col1):
                pair_tiles[pair] = row * tiles_x + col
                pair += 1


@numba.njit(cache=True)
def group_by_tile(starts: np.ndarray, pair_tiles: np.ndarray, depth_rows: np.ndarray,
                  n_tiles: int, tile_offsets: np.ndarray, tile_lists: np.ndarray) -> None:
    """Counting sort of the (splat, tile) pairs by tile; stable, so each list stays
    front to back. Writes ``tile_offsets [n_tiles + 1]`` and ``tile_lists [pairs]``
    (rows of the table)."""
    tile_offsets[:] = 0
    for k in range(pair_tiles.shape[0]):
        tile_offsets[pair_tiles[k] + 1] += 1
    for t in range(n_tiles):
        tile_offsets[t + 1] += tile_offsets[t]
    cursor = tile_offsets[:n_tiles].copy()
    for k in range(starts.shape[0] - 1):
        row = depth_rows[k]
        for pair in range(starts[k], starts[k + 1]):
            t = pair_tiles[pair]
            tile_lists[cursor[t]] = row
            cursor[t] += 1
