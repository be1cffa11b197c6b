"""The CPU rasterizer: compiled per-tile kernels (numba), gsplat 1.5's semantics.

Same contract as :mod:`gs_backend.raster.torch_tiles` (DESIGN contract 3), same
rules, computed differently:

1. **Projection** (:func:`~gs_backend.raster.numba_kernels.project`): one pass over
   the Gaussians in float64, gsplat's EWA projection and culling, which also counts,
   per chunk of Gaussians, the splats per tile; the kept rows are then copied into a
   table ordered by the tile of their centre (so a tile reads nearby rows).
2. **Binning**: each Gaussian lists the 16x16-pixel tiles whose pixel centres its
   alpha >= 1/255 ellipse reaches (``sigma <= ln(255 o)``, the opacity-aware
   extent, walked one tile row at a time, inside gsplat's tile box), written
   straight into its tiles' slots (a parallel counting sort by tile); then each
   tile's list is sorted on its own by centre depth, stably (ties by index), by
   :func:`~gs_backend.raster.numba_sort.sort_segments`.
3. **Compositing** (:func:`~gs_backend.raster.numba_composite.composite`): one
   parallel loop over tiles. Per tile, splats are visited in list order, each
   shading the 8-pixel float32 vectors of its rows in the column groups it
   touches (vectorised by LLVM); stopped pixels are trimmed from runs and a
   tile stops once all its pixels have stopped.

Threads: one parallel region per stage and frame, so a thread descheduled on a
busy machine costs its own share only. The thread count is numba's
(``NUMBA_NUM_THREADS``, default: all cores), or ``threads`` per call; numba splits
each loop into one contiguous block per thread, so the tile loops visit tiles in an
order that balances the blocks (:func:`balanced_order`). Calls are serialised by a lock
(numba's thread pool serves one parallel region at a time per process anyway).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
import torch
from torch import Tensor

from gs_backend.raster import numba_kernels as kernels
from gs_backend.raster.numba_composite import composite
from gs_backend.raster.numba_sort import sort_segments
from gs_backend.raster.types import RasterResult

TILE_SIZE = 16
"""Tile edge in pixels (gsplat's). Only pixels inside a splat's ellipse are evaluated,
whatever the tile size, so larger tiles only save per-tile work: 16 was ~20 % faster
than 8 on the benchmark scene, and still gives 1,200 tiles at 640x480 to share out."""
CHUNKS_PER_THREAD = 4
"""Projection and binning split the Gaussians into this many chunks per thread."""
MIN_CHUNK = 4096
"""Gaussians per chunk at least (each chunk counts splats per tile: ``tiles`` ints)."""
MAX_CHUNK_COUNTERS = 1 << 22
"""Chunks times tiles at most (fewer chunks for huge tile grids)."""

_LOCK = threading.Lock()


@dataclass(frozen=True)
class RasterStats:
    """Work counters of one frame (for benchmarks).

    Attributes:
        visible: Gaussians that survived projection culling.
        pairs: (tile, Gaussian) pairs in the tile lists.
        evaluated: (pixel, Gaussian) pairs whose alpha was computed.
        contributed: (pixel, Gaussian) pairs composited into the image.
        lanes: (pixel, Gaussian) pairs computed in 8-pixel vectors, whether inside the
            ellipse and live or not (``evaluated / lanes`` = the vector lanes' use).
    """

    visible: int
    pairs: int
    evaluated: int
    contributed: int
    lanes: int


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


class Binning(NamedTuple):
    """The kept splats and their per-tile lists (what compositing reads).

    Attributes:
        splats: ``[M, SPLAT_COLUMNS]`` float64 rows (see numba_kernels), ordered by the
            tile holding their centre, then by Gaussian index.
        features: ``[M, D (+1 with depth)]`` float32, rows as in ``splats``.
        ids: ``[M]`` int64: the Gaussian index of each row.
        tile_offsets: ``[tiles + 1]`` int64: tile t's list is
            ``tile_lists[tile_offsets[t]:tile_offsets[t + 1]]``.
        tile_lists: ``[pairs]`` int64 rows of ``splats``, each tile's front to back
            (centre depth, ties by Gaussian index).
        tile_order: ``[tiles]`` int64: the order the tile loops visit tiles in
            (:func:`balanced_order` of the list lengths).
    """

    splats: np.ndarray
    features: np.ndarray
    ids: np.ndarray
    tile_offsets: np.ndarray
    tile_lists: np.ndarray
    tile_order: np.ndarray


@numba.njit(cache=True)
def balanced_order(costs: np.ndarray, n_threads: int) -> np.ndarray:
    """Tiles ``[T]`` in the order a ``prange`` over them should visit them so that each
    thread gets a similar share of ``costs`` (``[T]``, e.g. list lengths).

    numba splits a ``prange`` into ``n_threads`` contiguous blocks of equal count (the
    first ``T % n_threads`` one longer) whatever the chunk size asked for (measured with
    numba 0.68 and the OpenMP and workqueue layers), so the heaviest tiles are dealt,
    in decreasing cost, to the block with the least cost so far that still has room;
    each block keeps its tiles heaviest first.
    """
    by_cost = np.argsort(-costs, kind="mergesort")  # stable: ties by tile index
    n = by_cost.shape[0]
    n_threads = max(1, min(n_threads, n))
    size = np.empty(n_threads, dtype=np.int64)
    for b in range(n_threads):
        size[b] = n // n_threads + (1 if b < n % n_threads else 0)
    start = np.zeros(n_threads + 1, dtype=np.int64)
    for b in range(n_threads):
        start[b + 1] = start[b] + size[b]
    filled = np.zeros(n_threads, dtype=np.int64)
    load = np.zeros(n_threads, dtype=np.float64)
    order = np.empty(n, dtype=np.int64)
    for tile in by_cost:
        best = -1
        for b in range(n_threads):
            if filled[b] < size[b] and (best < 0 or load[b] < load[best]):
                best = b
        order[start[best] + filled[best]] = tile
        filled[best] += 1
        load[best] += costs[tile]
    return order


def bin_splats(
    means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
    features: np.ndarray, viewmat: np.ndarray, K: np.ndarray, width: int, height: int,
    near: float, far: float, eps2d: float, antialiased: bool, with_depth: bool,
    tile_size: int,
) -> Binning:
    """Project the Gaussians (float32 arrays; ``viewmat``, ``K`` float64) and list the
    kept splats under the tiles whose pixel centres their ellipse reaches."""
    n = means.shape[0]
    tiles_x = -(-width // tile_size)
    tiles_y = -(-height // tile_size)
    n_tiles = tiles_x * tiles_y
    # Gaussians in contiguous chunks, a few per thread (similar work: numba splits the
    # chunk loop into one contiguous block per thread).
    n_chunks = max(1, min(CHUNKS_PER_THREAD * numba.get_num_threads(), n // MIN_CHUNK,
                          MAX_CHUNK_COUNTERS // n_tiles))
    chunk_starts = np.arange(n_chunks + 1, dtype=np.int64) * n // n_chunks
    table = np.empty((n, kernels.SPLAT_COLUMNS))
    home = np.empty(n, dtype=np.int32)
    spans = np.empty((n, 2 + 2 * kernels.SPAN_ROWS), dtype=np.int32)
    home_counts = np.empty((n_chunks, n_tiles), dtype=np.int64)
    pair_counts = np.empty((n_chunks, n_tiles), dtype=np.int64)
    kernels.project(means, quats, scales, opacities, viewmat, K, width, height, near, far,
                    eps2d, antialiased, tile_size, tiles_x, tiles_y, chunk_starts, table, home,
                    spans, home_counts, pair_counts)
    # Rows are stored in the order of the tile holding their centre, so that a tile's
    # list reads nearby rows; each tile's list is then sorted front to back by depth
    # (stable: ties in index order).
    row_cursor, row_offsets = kernels.chunk_cursors(home_counts)
    pair_cursor, tile_offsets = kernels.chunk_cursors(pair_counts)
    m, pairs = int(row_offsets[-1]), int(tile_offsets[-1])
    splats = np.empty((m, kernels.SPLAT_COLUMNS))
    splat_features = np.empty((m, features.shape[1] + int(with_depth)), dtype=np.float32)
    ids = np.empty(m, dtype=np.int64)
    row_keys = np.empty(m, dtype=np.uint64)
    pair_rows = np.empty(pairs, dtype=np.int32)  # rows < 2**31
    kernels.scatter_splats(table, table.view(np.uint64), home, spans, chunk_starts, tile_size,
                           tiles_x, row_cursor, pair_cursor, ids, row_keys, pair_rows)
    kernels.gather_splats(table, features, ids, with_depth, n_chunks, splats, splat_features)
    tile_order = balanced_order(np.diff(tile_offsets), numba.get_num_threads())
    tile_lists = np.empty(pairs, dtype=np.int64)
    sort_segments(tile_offsets, tile_order, row_keys, pair_rows, tile_lists)
    return Binning(splats, splat_features, ids, tile_offsets, tile_lists, tile_order)


def _render(
    means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray,
    features: np.ndarray, viewmat: np.ndarray, K: np.ndarray, width: int, height: int,
    background: np.ndarray, near: float, far: float, eps2d: float, antialiased: bool,
    with_depth: bool, tile_size: int, count: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, RasterStats]:
    splats, splat_features, _, tile_offsets, tile_lists, tile_order = bin_splats(
        means, quats, scales, opacities, features, viewmat, K, width, height, near, far,
        eps2d, antialiased, with_depth, tile_size)
    m, pairs = splats.shape[0], tile_lists.shape[0]
    tiles_x = -(-width // tile_size)
    n_tiles = tile_order.shape[0]
    rgb = np.empty((height, width, background.shape[0]), dtype=np.float32)
    alphas = np.empty((height, width), dtype=np.float32)
    depth = np.empty((height, width) if with_depth else (0, 0), dtype=np.float32)
    stats = np.zeros((n_tiles, 3), dtype=np.int64)
    composite(splats, splat_features, tile_offsets, tile_lists, tile_order, tile_size, tiles_x,
              width, height, background, with_depth, count, rgb, alphas, depth, stats)
    evaluated, contributed, lanes = stats.sum(axis=0)
    return rgb, alphas, depth, RasterStats(visible=m, pairs=pairs,
                                           evaluated=int(evaluated),
                                           contributed=int(contributed), lanes=int(lanes))
