"""Compiled CPU kernels of the numba rasterizer: projection and tile binning.

Compositing is in :mod:`gs_backend.raster.numba_composite`.

Each kernel is one ``numba.prange`` loop (over chunks of Gaussians or over tiles), so a
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
(gsplat's opacity-aware box, whole pixels), ``depth``, and the ellipse's half
width and half height ``reach_x = sqrt(reach2 cov_xx)``, ``reach_y = sqrt(reach2) / r``
(pixels, ``cov`` the blurred 2D covariance).

Compiled code is cached (:mod:`gs_backend.raster.numba_cache`), so compilation
(about 10 s) is paid once per machine.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gs_backend.raster.numba_cache import ensure_cache_location
from gs_backend.raster.numba_intrinsics import prefetch
from gs_backend.raster.numba_sort import depth_key

ensure_cache_location()

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
 REACH_X, REACH_Y) = range(SPLAT_COLUMNS)

SPAN_ROWS = 2
"""Projection records a splat's tile rows ``[row0, row1)`` and the column span of its
first ``SPAN_ROWS`` rows (most splats have no more), so binning need not work them out
again (the spans of further rows are)."""

GATHER_AHEAD = 8
"""Rows between prefetching a splat's projected row and copying it (4 and 16 were
slower). Gathering the rows in their order, prefetched, took 18 % (1M Gaussians) to
37 % (200k) less time on one thread than scattering them to their rows; prefetching
the scattered writes instead was slower."""

_LOG_THRESHOLD = math.log(ALPHA_THRESHOLD)


@numba.njit(cache=True, inline="always")
def prefetch_splat(table: np.ndarray, features: np.ndarray, row: int) -> None:
    """Prefetch row ``row`` of a splat table (two cache lines) and of its features."""
    prefetch(table, row, 0)
    prefetch(table, row, SPLAT_COLUMNS - 1)
    prefetch(features, row, 0)


@numba.njit(cache=True, inline="always")
def _project_one(
    i: int, means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
    viewmat: np.ndarray, fx: float, fy: float, cx: float, cy: float, lim_x_pos: float,
    lim_x_neg: float, lim_y_pos: float, lim_y_neg: float, width: int, height: int,
    near: float, far: float, eps2d: float, antialiased: bool,
) -> tuple:
    """EWA projection of Gaussian ``i`` with gsplat 1.5's culling (see
    gs_backend/raster/projection.py): ``(kept, row)``, ``row`` the splat table's
    ``SPLAT_COLUMNS`` values (zeros when not kept). Scalars only: no allocation."""
    nothing = (False, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    mx, my, mz = float(means[i, 0]), float(means[i, 1]), float(means[i, 2])
    x = viewmat[0, 0] * mx + viewmat[0, 1] * my + viewmat[0, 2] * mz + viewmat[0, 3]
    y = viewmat[1, 0] * mx + viewmat[1, 1] * my + viewmat[1, 2] * mz + viewmat[1, 3]
    z = viewmat[2, 0] * mx + viewmat[2, 1] * my + viewmat[2, 2] * mz + viewmat[2, 3]
    if not (z >= near and z <= far):
        return nothing
    w, qx, qy, qz = (float(quats[i, 0]), float(quats[i, 1]), float(quats[i, 2]),
                     float(quats[i, 3]))
    inv = 1.0 / math.sqrt(w * w + qx * qx + qy * qy + qz * qz)
    w, qx, qy, qz = w * inv, qx * inv, qy * inv, qz * inv
    # Columns of the rotation matrix.
    r00 = 1.0 - 2.0 * (qy * qy + qz * qz)
    r01 = 2.0 * (qx * qy - w * qz)
    r02 = 2.0 * (qx * qz + w * qy)
    r10 = 2.0 * (qx * qy + w * qz)
    r11 = 1.0 - 2.0 * (qx * qx + qz * qz)
    r12 = 2.0 * (qy * qz - w * qx)
    r20 = 2.0 * (qx * qz - w * qy)
    r21 = 2.0 * (qy * qz + w * qx)
    r22 = 1.0 - 2.0 * (qx * qx + qy * qy)
    rz = 1.0 / z
    tx = min(max(x * rz, -lim_x_neg), lim_x_pos)
    ty = min(max(y * rz, -lim_y_neg), lim_y_pos)
    # Rows of J M with M = R_cam R S (the covariance is M M^T).
    x0, y0 = _jacobian_column(viewmat, r00, r10, r20, float(scales[i, 0]), fx, fy, rz, tx, ty)
    x1, y1 = _jacobian_column(viewmat, r01, r11, r21, float(scales[i, 1]), fx, fy, rz, tx, ty)
    x2, y2 = _jacobian_column(viewmat, r02, r12, r22, float(scales[i, 2]), fx, fy, rz, tx, ty)
    cov_xx = x0 * x0 + x1 * x1 + x2 * x2
    cov_xy = x0 * y0 + x1 * y1 + x2 * y2
    cov_yy = y0 * y0 + y1 * y1 + y2 * y2
    c0 = x1 * y2 - x2 * y1
    c1 = x2 * y0 - x0 * y2
    c2 = x0 * y1 - x1 * y0
    det_orig = c0 * c0 + c1 * c1 + c2 * c2  # Cauchy-Binet: no cancellation
    det = det_orig + eps2d * (cov_xx + cov_yy) + eps2d * eps2d
    if not det > 0.0:
        return nothing
    blur_xx = cov_xx + eps2d
    blur_yy = cov_yy + eps2d
    opacity = float(opacities[i])
    if antialiased:
        opacity *= math.sqrt(det_orig / det)
    if not opacity >= ALPHA_THRESHOLD:
        return nothing
    level = math.log(opacity) - _LOG_THRESHOLD  # alpha >= 1/255 <=> sigma <= level
    extend = min(MAX_EXTEND, math.sqrt(2.0 * max(level, 0.0)))
    radius_x = math.ceil(extend * math.sqrt(blur_xx))
    radius_y = math.ceil(extend * math.sqrt(blur_yy))
    mean_x = fx * x * rz + cx
    mean_y = fy * y * rz + cy
    if radius_x <= 0 or radius_y <= 0:
        return nothing
    if mean_x + radius_x <= 0 or mean_x - radius_x >= width:
        return nothing
    if mean_y + radius_y <= 0 or mean_y - radius_y >= height:
        return nothing
    root_det_yy = math.sqrt(det * blur_yy)
    reach2 = 2.0 * (level * (1.0 + 1e-6) + 1e-6)
    return (True, mean_x, mean_y, blur_yy / root_det_yy, -cov_xy / root_det_yy,
            1.0 / math.sqrt(blur_yy), opacity, reach2, float(radius_x), float(radius_y), z,
            math.sqrt(reach2 * blur_xx), math.sqrt(reach2 * blur_yy))


@numba.njit(cache=True, inline="always")
def _jacobian_column(viewmat: np.ndarray, rot0: float, rot1: float, rot2: float, s: float,
                     fx: float, fy: float, rz: float, tx: float,
                     ty: float) -> tuple[float, float]:
    """Column ``j`` of the rows of ``J R_cam R S``: ``(x_j, y_j)`` from the rotation's
    column ``j`` and the scale ``s``."""
    m0 = (viewmat[0, 0] * rot0 + viewmat[0, 1] * rot1 + viewmat[0, 2] * rot2) * s
    m1 = (viewmat[1, 0] * rot0 + viewmat[1, 1] * rot1 + viewmat[1, 2] * rot2) * s
    m2 = (viewmat[2, 0] * rot0 + viewmat[2, 1] * rot1 + viewmat[2, 2] * rot2) * s
    return fx * rz * (m0 - tx * m2), fy * rz * (m1 - ty * m2)


@numba.njit(cache=True, inline="always")
def _row_span(mean_y: float, radius_y: float, reach_y: float, tile_size: int,
              tiles_y: int) -> tuple[int, int]:
    """Tile rows ``[first, end)`` whose pixel centres the splat's ellipse reaches."""
    reach_y = reach_y + CULL_PAD_PX
    # Tile row i holds pixel centres y in [i ts + 0.5, i ts + ts - 0.5].
    first = max(math.ceil((mean_y - reach_y - (tile_size - 0.5)) / tile_size),
                math.floor((mean_y - radius_y) / tile_size))
    end = min(math.floor((mean_y + reach_y - 0.5) / tile_size) + 1,
              math.ceil((mean_y + radius_y) / tile_size))
    return int(min(max(first, 0), tiles_y)), int(min(max(end, 0), tiles_y))


@numba.njit(cache=True, inline="always")
def _extreme_dy(q: float, r: float, reach2: float) -> float:
    """The offset dy where the ellipse's left end is least (its right end greatest at -dy)."""
    return q * math.sqrt(reach2) / (r * math.hypot(q, r))


@numba.njit(cache=True, inline="always")
def _column_span(mean_x: float, mean_y: float, p: float, q: float, r: float, reach2: float,
                 reach: float, radius_x: float, extreme: float, row: int, tile_size: int,
                 tiles_x: int) -> tuple[int, int]:
    """Tile columns ``[first, end)`` of tile row ``row`` whose pixel centres the ellipse
    reaches (``reach``: the splat's ``REACH_Y``; ``extreme``: :func:`_extreme_dy`).

    At offset dy the ellipse spans dx in ``[(-q dy - h) / p, (-q dy + h) / p]`` with
    ``h = sqrt(reach2 - (r dy)^2)``; over the row's dy range the left end is least at
    ``dy = q sqrt(reach2) / (r hypot(q, r))`` (clamped), the right end greatest at minus that.
    """
    top = row * tile_size + 0.5 - mean_y
    dy_lo = max(top, -reach)
    dy_hi = min(top + (tile_size - 1), reach)
    dy_left = min(max(extreme, dy_lo), dy_hi)
    dy_right = min(max(-extreme, dy_lo), dy_hi)
    h_left = math.sqrt(max(reach2 - (r * dy_left) ** 2, 0.0))
    h_right = math.sqrt(max(reach2 - (r * dy_right) ** 2, 0.0))
    x_left = mean_x - (q * dy_left + h_left) / p - CULL_PAD_PX
    x_right = mean_x - (q * dy_right - h_right) / p + CULL_PAD_PX
    first = max(math.ceil((x_left - (tile_size - 0.5)) / tile_size),
                math.floor((mean_x - radius_x) / tile_size))
    end = min(math.floor((x_right - 0.5) / tile_size) + 1,
              math.ceil((mean_x + radius_x) / tile_size))
    return int(min(max(first, 0), tiles_x)), int(min(max(end, 0), tiles_x))


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
    tile_size: int,
    tiles_x: int,
    tiles_y: int,
    chunk_starts: np.ndarray,  # [C + 1] int64: chunk c is Gaussians [starts[c], starts[c + 1])
    out: np.ndarray,  # [N, SPLAT_COLUMNS] float64, written where kept
    home: np.ndarray,  # [N] int32, written: the tile holding the centre, -1 if culled
    spans: np.ndarray,  # [N, 2 + 2 SPAN_ROWS] int32, written where kept (see SPAN_ROWS)
    home_counts: np.ndarray,  # [C, tiles] int64, written: chunk c's splats per home tile
    pair_counts: np.ndarray,  # [C, tiles] int64, written: chunk c's splats listed per tile
) -> None:
    """Project every Gaussian (gsplat 1.5's EWA projection and culling) and count, per
    chunk of Gaussians, the splats per home tile and per listed tile (the tiles whose
    pixel centres the splat's ``reach2`` ellipse reaches; see :func:`scatter_splats`)."""
    fx, fy = intrinsics[0, 0], intrinsics[1, 1]
    cx, cy = intrinsics[0, 2], intrinsics[1, 2]
    lim_x_pos = (width - cx) / fx + JACOBIAN_FOV_MARGIN * (0.5 * width / fx)
    lim_x_neg = cx / fx + JACOBIAN_FOV_MARGIN * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + JACOBIAN_FOV_MARGIN * (0.5 * height / fy)
    lim_y_neg = cy / fy + JACOBIAN_FOV_MARGIN * (0.5 * height / fy)
    for c in numba.prange(chunk_starts.shape[0] - 1):
        home_counts[c, :] = 0
        pair_counts[c, :] = 0
        for i in range(chunk_starts[c], chunk_starts[c + 1]):
            (kept, mean_x, mean_y, p, q, r, opacity, reach2, radius_x, radius_y, depth,
             reach_x, reach_y) = _project_one(
                i, means, quats, scales, opacities, viewmat, fx, fy, cx, cy, lim_x_pos,
                lim_x_neg, lim_y_pos, lim_y_neg, width, height, near, far, eps2d,
                antialiased)
            if not kept:
                home[i] = -1
                continue
            out[i, MEAN_X] = mean_x
            out[i, MEAN_Y] = mean_y
            out[i, ROOT_P] = p
            out[i, ROOT_Q] = q
            out[i, ROOT_R] = r
            out[i, OPACITY] = opacity
            out[i, REACH2] = reach2
            out[i, RADIUS_X] = radius_x
            out[i, RADIUS_Y] = radius_y
            out[i, DEPTH] = depth
            out[i, REACH_X] = reach_x
            out[i, REACH_Y] = reach_y
            t = (min(max(math.floor(mean_y / tile_size), 0), tiles_y - 1) * tiles_x
                 + min(max(math.floor(mean_x / tile_size), 0), tiles_x - 1))
            home[i] = t
            home_counts[c, t] += 1
            row0, row1 = _row_span(mean_y, radius_y, reach_y, tile_size, tiles_y)
            spans[i, 0] = row0
            spans[i, 1] = row1
            extreme = _extreme_dy(q, r, reach2)
            for row in range(row0, row1):
                col0, col1 = _column_span(mean_x, mean_y, p, q, r, reach2, reach_y, radius_x,
                                          extreme, row, tile_size, tiles_x)
                if row - row0 < SPAN_ROWS:
                    spans[i, 2 + 2 * (row - row0)] = col0
                    spans[i, 3 + 2 * (row - row0)] = col1
                for col in range(col0, col1):
                    pair_counts[c, row * tiles_x + col] += 1


@numba.njit(cache=True)
def chunk_cursors(counts: np.ndarray  # [C, tiles] int64
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Slots of a stable counting sort by tile of items counted per chunk: ``(cursor
    [C, tiles], offsets [tiles + 1])``; chunk c's first item of tile t goes to
    ``cursor[c, t]``, tile t's items fill ``[offsets[t], offsets[t + 1])`` in chunk order."""
    n_chunks, n_tiles = counts.shape
    cursor = np.empty((n_chunks, n_tiles), dtype=np.int64)
    offsets = np.empty(n_tiles + 1, dtype=np.int64)
    total = 0
    for t in range(n_tiles):
        offsets[t] = total
        for c in range(n_chunks):
            cursor[c, t] = total
            total += counts[c, t]
    offsets[n_tiles] = total
    return cursor, offsets


@numba.njit(parallel=True, cache=True)
def scatter_splats(
    table: np.ndarray,  # [N, SPLAT_COLUMNS] float64, from project
    table_bits: np.ndarray,  # [N, SPLAT_COLUMNS] uint64: the same memory
    home: np.ndarray,  # [N] int32 from project
    spans: np.ndarray,  # [N, 2 + 2 SPAN_ROWS] int32 from project
    chunk_starts: np.ndarray,  # [C + 1] int64, as given to project
    tile_size: int,
    tiles_x: int,
    row_cursor: np.ndarray,  # [C, tiles] int64 from chunk_cursors(home_counts), advanced
    pair_cursor: np.ndarray,  # [C, tiles] int64 from chunk_cursors(pair_counts), advanced
    ids: np.ndarray,  # [M] int64, written: the Gaussian index of each row
    row_keys: np.ndarray,  # [M] uint64, written: depth_key of each row's depth
    pair_rows: np.ndarray,  # [pairs] int32, written: the rows listed, grouped by tile
) -> None:
    """Give the kept splats rows ordered by home tile (then by index), so a tile's list
    reads nearby rows, and list each under every tile it reaches, grouped by tile, in
    index order within a tile. The rows are then filled by :func:`gather_splats`."""
    for c in numba.prange(chunk_starts.shape[0] - 1):
        for i in range(chunk_starts[c], chunk_starts[c + 1]):
            t = home[i]
            if t < 0:
                continue
            k = row_cursor[c, t]
            row_cursor[c, t] = k + 1
            ids[k] = i
            row_keys[k] = depth_key(table_bits[i, DEPTH])
            row0, row1 = spans[i, 0], spans[i, 1]
            for row in range(row0, row1):
                if row - row0 < SPAN_ROWS:
                    col0 = spans[i, 2 + 2 * (row - row0)]
                    col1 = spans[i, 3 + 2 * (row - row0)]
                else:
                    q, r, reach2 = table[i, ROOT_Q], table[i, ROOT_R], table[i, REACH2]
                    col0, col1 = _column_span(
                        table[i, MEAN_X], table[i, MEAN_Y], table[i, ROOT_P], q, r, reach2,
                        table[i, REACH_Y], table[i, RADIUS_X], _extreme_dy(q, r, reach2), row,
                        tile_size, tiles_x)
                for col in range(col0, col1):
                    tile = row * tiles_x + col
                    slot = pair_cursor[c, tile]
                    pair_cursor[c, tile] = slot + 1
                    pair_rows[slot] = k


@numba.njit(parallel=True, cache=True)
def gather_splats(
    table: np.ndarray,  # [N, SPLAT_COLUMNS] float64, from project
    features: np.ndarray,  # [N, D] float32
    ids: np.ndarray,  # [M] int64 from scatter_splats
    with_depth: bool,
    n_parts: int,
    splats: np.ndarray,  # [M, SPLAT_COLUMNS] float64, written: table[ids]
    splat_features: np.ndarray,  # [M, D (+1 with depth)] float32, written
) -> None:
    """Copy the kept splats' rows into their order (the depth appended as a last feature
    when asked for), in ``n_parts`` runs of rows: the rows read are scattered, so each is
    prefetched ``GATHER_AHEAD`` rows before it is copied."""
    m = ids.shape[0]
    n_feat = features.shape[1]
    for part in numba.prange(n_parts):
        end = (part + 1) * m // n_parts
        for k in range(part * m // n_parts, end):
            if k + GATHER_AHEAD < end:
                prefetch_splat(table, features, ids[k + GATHER_AHEAD])
            i = ids[k]
            for j in range(SPLAT_COLUMNS):
                splats[k, j] = table[i, j]
            for j in range(n_feat):
                splat_features[k, j] = features[i, j]
            if with_depth:
                splat_features[k, n_feat] = table[i, DEPTH]
