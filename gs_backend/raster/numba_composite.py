"""Compiled compositing of the numba rasterizer: eight float32 lanes at a time.

One parallel loop over tiles (in the order given: see numba_tiles.balanced_order).
A tile's pixels are stored in groups of ``LANES`` columns, each group row-major and
contiguous, so a vector is one row of a group and the pixels a splat can reach (its
rows, in the groups its columns touch) form a few contiguous runs of whole vectors;
LLVM compiles the branch-free loop over a run into AVX2 or NEON vectors. Per splat
and pixel the rules are gsplat 1.5's (DESIGN contract 3):

    sigma = 0.5 ((p dx + q dy)^2 + (r dy)^2),  alpha = min(0.999, o exp(-sigma))

skipped below 1/255, the pixel stops before the splat that would take its
transmittance ``T`` to <= 1e-4, else ``c += alpha T f`` and ``T *= 1 - alpha``.

Precision: the lanes work in float32, as gsplat does; ``dx, dy`` are taken from a
16-pixel-aligned block origin (computed in float64 per splat), so a pixel gets the
same bits whatever the tile size (4, 8 or 16) and thread count. ``exp`` is a
range-reduced polynomial (1-2 float32 ulps) that vectorises. A stopped pixel keeps
its transmittance negated (``T < 0`` means "stopped", so no extra mask array).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gs_backend.raster.numba_cache import ensure_cache_location
from gs_backend.raster.numba_intrinsics import float32_from_bits
from gs_backend.raster.numba_kernels import (
    ALPHA_THRESHOLD,
    CULL_PAD_PX,
    DEPTH_ALPHA_FLOOR,
    MAX_ALPHA,
    MEAN_X,
    MEAN_Y,
    OPACITY,
    REACH2,
    REACH_X,
    REACH_Y,
    ROOT_P,
    ROOT_Q,
    ROOT_R,
    TRANSMITTANCE_STOP,
    prefetch_splat,
)

ensure_cache_location()

LANES = 8
"""Pixels per vector (AVX2: 8 float32), and columns per contiguous pixel group (4-column
groups, two rows per vector, made more and shorter runs: slower)."""
PREFETCH_AHEAD = 4
"""List entries between prefetching a splat's row and compositing it (2-8 were alike
on the benchmark; compositing a 1M-Gaussian frame took ~35 % less time)."""
LIVENESS_PERIOD = 16
"""Every this many splats a tile recounts its live pixels per vector: vectors whose
pixels have all stopped are trimmed from the ends of later runs, and the tile ends
when none is live."""
BLOCK = 16
"""Lane coordinates are taken from the origin of the BLOCK-aligned square holding
the tile, so tile sizes dividing BLOCK give identical bits."""

_F32 = np.float32
_THRESHOLD = _F32(ALPHA_THRESHOLD)
_MAX_ALPHA = _F32(MAX_ALPHA)
_STOP = _F32(TRANSMITTANCE_STOP)
_LOG2E = _F32(1.0 / math.log(2.0))
_LN2_HI = _F32(0.693359375)  # Cody-Waite split of ln 2 (exact in float32 times small n)
_LN2_LO = _F32(-2.12194440e-4)
_EXP_FLOOR = _F32(-87.0)  # below this exp underflows float32's normal range


@numba.njit(inline="always")
def exp_nonpositive(x: np.float32) -> np.float32:
    """``exp(x)`` for float32 ``x <= 0``, branch-free (vectorises); 0 below -87.

    ``x = n ln2 + r`` with ``|r| <= ln2 / 2``; ``exp(r)`` by its degree-7 Taylor
    polynomial (truncation < 1e-8 relative); ``2^n`` built from its bits.
    """
    x = max(x, _EXP_FLOOR)
    n_int = np.int32(x * _LOG2E - _F32(0.5))  # round to nearest for x <= 0
    n = _F32(n_int)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    r2 = r * r  # Estrin's scheme: a short dependency chain
    p01 = _F32(1.0) + r
    p23 = _F32(0.5) + _F32(1.0 / 6.0) * r
    p45 = _F32(1.0 / 24.0) + _F32(1.0 / 120.0) * r
    p67 = _F32(1.0 / 720.0) + _F32(1.0 / 5040.0) * r
    p = (p01 + r2 * p23) + (r2 * r2) * (p45 + r2 * p67)
    return p * float32_from_bits(np.int32((n_int + np.int32(127)) << np.int32(23)))


@numba.njit(inline="always")
def _shade_run(
    trans: np.ndarray, weight: np.ndarray,  # [P] float32, updated / written in [lo, hi)
    evaluated: np.ndarray, used: np.ndarray,  # [P] int32 counters, when ``count``
    xs: np.ndarray, ys: np.ndarray,  # [P] float32 pixel offsets from the block origin
    lo: np.uint64, hi: np.uint64,  # the run (unsigned: no negative-index wrap, so it vectorises)
    count: bool,
    p: np.float32, q: np.float32, r: np.float32, cu: np.float32, cv: np.float32,
    opacity: np.float32, half_reach2: np.float32,
) -> None:
    """One splat over one contiguous run of lanes (a multiple of LANES)."""
    for i in range(lo, hi):
        u = p * xs[i] + (q * ys[i] + cu)
        v = r * ys[i] + cv
        sigma = _F32(0.5) * (u * u + v * v)
        alpha = min(_MAX_ALPHA, opacity * exp_nonpositive(-sigma))
        t = trans[i]
        t_next = t * (_F32(1.0) - alpha)
        inside = (sigma <= half_reach2) & (t > _F32(0.0))
        hit = inside & (alpha >= _THRESHOLD)
        stop = hit & (t_next <= _STOP)
        take = hit & (t_next > _STOP)
        weight[i] = alpha * t if take else _F32(0.0)
        trans[i] = t_next if take else (-t if stop else t)
        if count:
            evaluated[i] += inside
            used[i] += take


@numba.njit(inline="always")
def _count_live(trans: np.ndarray, vector_live: np.ndarray) -> int:
    """Write each vector's count of live pixels (``T > 0``) to ``vector_live``; return the sum."""
    total = 0
    for v in range(vector_live.shape[0]):
        lanes = trans[v * LANES:(v + 1) * LANES]
        n = 0
        for i in range(LANES):
            n += lanes[i] > _F32(0.0)
        vector_live[v] = n
        total += n
    return total


@numba.njit(parallel=True, cache=True, fastmath={"contract"})
def composite(
    table: np.ndarray,  # [M, SPLAT_COLUMNS] float64
    features: np.ndarray,  # [M, C] float32, rows as in ``table``
    tile_offsets: np.ndarray,  # [tiles + 1] int64
    tile_lists: np.ndarray,  # [pairs] int64 rows of ``table``, front to back per tile
    tile_order: np.ndarray,  # [tiles] int64: the order tiles are handed to threads
    tile_size: int,
    tiles_x: int,
    width: int,
    height: int,
    background: np.ndarray,  # [D] float64, D <= C (the rest: expected depth's sum)
    with_depth: bool,
    count: bool,
    colors_out: np.ndarray,  # [H, W, D] float32, written
    alphas_out: np.ndarray,  # [H, W] float32, written
    depth_out: np.ndarray,  # [H, W] float32, written when with_depth
    stats: np.ndarray,  # [tiles, 3] int64, when count: pairs evaluated, used; lanes computed
) -> None:
    """Front-to-back compositing of every tile, one tile per parallel iteration.

    A splat shades the lanes of its rows (``reach_y``) in the column groups its
    columns (``reach_x``) touch; ``evaluated`` counts the live pixels inside its
    ``reach2`` ellipse, ``used`` those composited, ``lanes_computed`` the vector lanes
    run (inside or not). Stopped pixels are trimmed
    from runs every ``LIVENESS_PERIOD`` splats (see there).
    """
    n_feat = features.shape[1]
    n_colors = background.shape[0]
    groups = -(-tile_size // LANES)
    group_pix = tile_size * LANES  # a group: tile_size rows (vectors) of LANES pixels
    n_vectors = groups * tile_size
    n_pix = n_vectors * LANES
    for k in numba.prange(tile_order.shape[0]):
        tile = tile_order[k]
        x0 = (tile % tiles_x) * tile_size
        y0 = (tile // tiles_x) * tile_size
        block_x = (x0 // BLOCK) * BLOCK
        block_y = (y0 // BLOCK) * BLOCK
        cols = min(tile_size, width - x0)
        rows = min(tile_size, height - y0)
        xs = np.empty(n_pix, dtype=np.float32)
        ys = np.empty(n_pix, dtype=np.float32)
        trans = np.empty(n_pix, dtype=np.float32)
        for i in range(n_pix):
            v = i // LANES  # vector = group * tile_size + row
            yy = v % tile_size
            xx = (v // tile_size) * LANES + i % LANES
            xs[i] = _F32(x0 - block_x + xx)
            ys[i] = _F32(y0 - block_y + yy)
            trans[i] = _F32(1.0) if (xx < cols and yy < rows) else _F32(-1.0)
        weight = np.zeros(n_pix, dtype=np.float32)
        accum = np.zeros(n_feat * n_pix, dtype=np.float32)  # channel-major
        evaluated = np.zeros(n_pix if count else 0, dtype=np.int32)
        used = np.zeros(n_pix if count else 0, dtype=np.int32)
        vector_live = np.empty(n_vectors, dtype=np.int64)
        first, end = tile_offsets[tile], tile_offsets[tile + 1]
        lanes_computed = 0
        for entry in range(first, end):
            if (entry - first) % LIVENESS_PERIOD == 0:
                if _count_live(trans, vector_live) == 0:
                    break
            if entry + PREFETCH_AHEAD < end:
                prefetch_splat(table, features, tile_lists[entry + PREFETCH_AHEAD])
            g = tile_lists[entry]
            mean_x, mean_y = table[g, MEAN_X], table[g, MEAN_Y]
            p, q, r = table[g, ROOT_P], table[g, ROOT_Q], table[g, ROOT_R]
            reach2, reach_y = table[g, REACH2], table[g, REACH_Y]
            centre_y = mean_y - y0 - 0.5
            row_lo = max(math.ceil(centre_y - reach_y - CULL_PAD_PX), 0)
            row_hi = min(math.floor(centre_y + reach_y + CULL_PAD_PX), rows - 1)
            reach_x = table[g, REACH_X]
            centre_x = mean_x - x0 - 0.5
            col_lo = max(math.ceil(centre_x - reach_x - CULL_PAD_PX), 0)
            col_hi = min(math.floor(centre_x + reach_x + CULL_PAD_PX), cols - 1)
            if row_lo > row_hi or col_lo > col_hi:
                continue
            p32, q32, r32 = _F32(p), _F32(q), _F32(r)
            cu = _F32(p * (block_x + 0.5 - mean_x) + q * (block_y + 0.5 - mean_y))
            cv = _F32(r * (block_y + 0.5 - mean_y))
            opacity = _F32(table[g, OPACITY])
            half_reach2 = _F32(0.5 * reach2)
            for group in range(col_lo // LANES, col_hi // LANES + 1):
                # The run: this group's vectors over the splat's rows, less the
                # vectors at either end whose pixels have all stopped.
                v_lo = group * tile_size + row_lo
                v_hi = group * tile_size + row_hi
                while v_lo <= v_hi and vector_live[v_lo] == 0:
                    v_lo += 1
                while v_hi >= v_lo and vector_live[v_hi] == 0:
                    v_hi -= 1
                if v_lo > v_hi:
                    continue
                lo = v_lo * LANES
                hi = (v_hi + 1) * LANES
                lo_u, hi_u = np.uint64(lo), np.uint64(hi)
                lanes_computed += hi - lo
                if count:  # two inlined copies: the counters cost nothing when not asked for
                    _shade_run(trans, weight, evaluated, used, xs, ys, lo_u, hi_u, True,
                               p32, q32, r32, cu, cv, opacity, half_reach2)
                else:
                    _shade_run(trans, weight, evaluated, used, xs, ys, lo_u, hi_u, False,
                               p32, q32, r32, cu, cv, opacity, half_reach2)
                for c in range(n_feat):
                    f = features[g, c]
                    if f == 0.0:  # adds nothing (e.g. other instruments' channels)
                        continue
                    base = np.uint64(c * n_pix)
                    for i in range(lo_u, hi_u):
                        accum[base + i] += weight[i] * f
        if count:
            stats[tile, 0] = evaluated.sum()
            stats[tile, 1] = used.sum()
            stats[tile, 2] = lanes_computed
        for yy in range(rows):
            for xx in range(cols):
                i = (xx // LANES) * group_pix + yy * LANES + xx % LANES
                t = abs(trans[i])
                py, px = y0 + yy, x0 + xx
                for c in range(n_colors):
                    colors_out[py, px, c] = accum[c * n_pix + i] + t * background[c]
                alpha = _F32(1.0) - t
                alphas_out[py, px] = alpha
                if with_depth:
                    depth_out[py, px] = accum[n_colors * n_pix + i] / max(alpha, DEPTH_ALPHA_FLOOR)
