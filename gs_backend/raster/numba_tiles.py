"""The CPU rasterizer: compiled per-tile kernels (numba), gsplat 1.5's semantics.

Same contract as :mod:`gs_backend.raster.torch_tiles` (DESIGN contract 3), same
rules, computed differently:

1. **Projection** (:func:`~gs_backend.raster.numba_kernels.project`): one pass over
   the Gaussians in float64, gsplat's EWA projection and culling; the survivors are
   stably sorted by centre depth (ties by index), and their rows copied into a
   table ordered by the tile of their centre (so a tile reads nearby rows).
2. **Binning**: each Gaussian lists the 16x16-pixel tiles whose pixel centres its
   alpha >= 1/255 ellipse reaches (``sigma <= ln(255 o)``, the opacity-aware
   extent, walked one tile row at a time, inside gsplat's tile box); a stable
   counting sort by tile keeps every tile's list front to back.
3. **Compositing**: one parallel loop over tiles. Per tile, splats are visited in
   list order; in each pixel row only the pixel centres inside the ellipse are
   evaluated, with the exact rule deciding; a tile stops once all its pixels have
   stopped.

Threads: one parallel region per stage and frame, so a thread descheduled on a
busy machine costs its own share only. The thread count is numba's
(``NUMBA_NUM_THREADS``, default: all cores), or ``threads`` per call; tiles are
handed out dynamically, longest lists first. Calls are serialised by a lock
(numba's thread pool serves one parallel region at a time per process anyway).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import Tensor

from gs_backend.raster import numba_kernels as kernels
from gs_backend.raster.numba_composite import composite
from gs_backend.raster.types import RasterResult

TILE_SIZE = 16
"""Tile edge in pixels (gsplat's). Only pixels inside a splat's ellipse are evaluated,
whatever the tile size, so larger tiles only save per-tile work: 16 was ~20 % faster
than 8 on the benchmark scene, and still gives 1,200 tiles at 640x480 to share out."""
TILES_PER_CHUNK = 2
"""Tiles handed to a thread at a time (dynamic scheduling)."""

_LOCK = threading.Lock()


@dataclass(frozen=True)
class RasterStats:
    """Work counters of one frame (for benchmarks).

    Attributes:
        visible: Gaussians that survived projection culling.
        pairs: (tile, Gaussian) pairs in the tile lists.
        evaluated: (pixel, Gaussian) pairs whose alpha was computed.
        contributed: (pixel, Gaussian) pairs composited into the image.
    """

    visible: int
    pairs: int
    evaluated: int
    contributed: int


def default_threads() -> int:
    """Threads a frame uses unless told otherwise: ``NUMBA_NUM_THREADS`` (all cores)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def rasterize_numba(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    viewmat: Tensor,  # [4, 4] world -> camera, OpenCV axes
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor | None,  # [D]
    near: float,
    far: float,
    eps2d: float,
    antialiased: bool,
    with_depth: bool,
    tile_size: int = TILE_SIZE,
    threads: int | None = None,
) -> RasterResult:
    """Render one view on the CPU (float32 tensors; results on the input device)."""
    result, _ = _rasterize(
        means, quats, scales, opacities, colors, viewmat, K, width, height,
        background=background, near=near, far=far, eps2d=eps2d, antialiased=antialiased,
        with_depth=with_depth, tile_size=tile_size, threads=threads, count=False)
    return result


def rasterize_numba_with_stats(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmat: Tensor, K: Tensor, width: int, height: int, *,
    background: Tensor | None, near: float, far: float, eps2d: float, antialiased: bool,
    with_depth: bool, tile_size: int = TILE_SIZE, threads: int | None = None,
) -> tuple[RasterResult, RasterStats]:
    """:func:`rasterize_numba` plus the frame's :class:`RasterStats` (counting costs a
    little, so plain renders skip it; the image is the same)."""
    return _rasterize(means, quats, scales, opacities, colors, viewmat, K, width, height,
                      background=background, near=near, far=far, eps2d=eps2d,
                      antialiased=antialiased, with_depth=with_depth, tile_size=tile_size,
                      threads=threads, count=True)


def _rasterize(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmat: Tensor, K: Tensor, width: int, height: int, *,
    background: Tensor | None, near: float, far: float, eps2d: float, antialiased: bool,
    with_depth: bool, tile_size: int, threads: int | None, count: bool,
) -> tuple[RasterResult, RasterStats]:
    device = means.device

    def host(t: Tensor, dtype: torch.dtype = torch.float32) -> np.ndarray:
        return t.detach().to("cpu", dtype).contiguous().numpy()

    n_colors = colors.shape[1]
    bg = (np.zeros(n_colors) if background is None else host(background, torch.float64))
    n_threads = default_threads() if threads is None else max(1, min(threads,
                                                                       default_threads()))
    with _LOCK:
        numba.set_num_threads(n_threads)
        with numba.parallel_chunksize(TILES_PER_CHUNK):
            out = _render(host(means), host(quats), host(scales), host(opacities), host(colors),
                          host(viewmat, torch.float64), host(K, torch.float64), int(width),
                          int(height), bg, float(near), float(far), float(eps2d),
                          bool(antialiased), bool(with_depth), int(tile_size), bool(count))
    rgb, alphas, depth, stats = out

    def back(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a).to(device)

    result = RasterResult(colors=back(rgb), alphas=back(alphas),
                          depth=back(depth) if with_depth else None)
    return result, stats


def _render(
    means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
    features: np.ndarray, viewmat: np.ndarray, K: np.ndarray, width: int, height: int,
    background: np.ndarray, near: float, far: float, eps2d: float, antialiased: bool,
    with_depth: bool, tile_size: int, count: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, RasterStats]:
    n = means.shape[0]
    table = np.empty((n, kernels.SPLAT_COLUMNS))
    visible = np.empty(n, dtype=np.bool_)
    kernels.project(means, quats, scales, opacities, viewmat, K, width, height, near, far,
                    eps2d, antialiased, table, visible)
    ids = np.flatnonzero(visible)
    front_to_back = ids[np.argsort(table[ids, kernels.DEPTH], kind="stable")]  # ties by index
    tiles_x = -(-width // tile_size)
    tiles_y = -(-height // tile_size)
    n_tiles = tiles_x * tiles_y
    # Rows are stored in the order of the tile holding their centre, so that a tile's
    # list reads nearby rows; depth_rows[k] is the row of the k-th splat from the front.
    centre_x = table[front_to_back, kernels.MEAN_X] // tile_size
    centre_y = table[front_to_back, kernels.MEAN_Y] // tile_size
    home = (np.clip(centre_y, 0, tiles_y - 1) * tiles_x + np.clip(centre_x, 0, tiles_x - 1))
    key_type = np.int16 if n_tiles <= np.iinfo(np.int16).max else np.int32  # radix sort
    spatial = np.argsort(home.astype(key_type), kind="stable")
    m = spatial.shape[0]
    depth_rows = np.empty(m, dtype=np.int64)
    depth_rows[spatial] = np.arange(m)
    splats = np.empty((m, kernels.SPLAT_COLUMNS))
    splat_features = np.empty((m, features.shape[1] + int(with_depth)), dtype=np.float32)
    kernels.gather_rows(table, features, front_to_back[spatial], with_depth, splats,
                        splat_features)

    counts = np.empty(m, dtype=np.int64)
    kernels.count_tiles(splats, depth_rows, tile_size, tiles_x, tiles_y, counts)
    starts = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    pair_tiles = np.empty(int(starts[-1]), dtype=np.int64)
    kernels.list_tiles(splats, depth_rows, tile_size, tiles_x, tiles_y, starts, pair_tiles)
    tile_offsets = np.empty(n_tiles + 1, dtype=np.int64)
    tile_lists = np.empty_like(pair_tiles)
    kernels.group_by_tile(starts, pair_tiles, depth_rows, n_tiles, tile_offsets, tile_lists)

    # Longest lists first, so the last tiles handed out are short ones.
    tile_order = np.argsort(-np.diff(tile_offsets), kind="stable")
    rgb = np.empty((height, width, background.shape[0]), dtype=np.float32)
    alphas = np.empty((height, width), dtype=np.float32)
    depth = np.empty((height, width) if with_depth else (0, 0), dtype=np.float32)
    stats = np.zeros((n_tiles, 2), dtype=np.int64)
    composite(splats, splat_features, tile_offsets, tile_lists, tile_order, tile_size, tiles_x,
              width, height, background, with_depth, count, rgb, alphas, depth, stats)
    evaluated, contributed = stats.sum(axis=0)
    return rgb, alphas, depth, RasterStats(visible=m, pairs=int(starts[-1]),
                                           evaluated=int(evaluated),
                                           contributed=int(contributed))
