"""The numba rasterizer's sorts and tile lists against plain numpy constructions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gs_backend.raster import numba_kernels as kernels
from gs_backend.raster.numba_sort import depth_key, sort_segments
from gs_backend.raster.numba_tiles import bin_splats
from tests.raster_reference import random_scene


def _keys(values: np.ndarray) -> np.ndarray:
    return np.array([depth_key(b) for b in values.astype(np.float64).view(np.uint64)],
                    dtype=np.uint64)


def test_depth_key_orders_like_the_floats() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate((rng.normal(0, 1e3, 500), [0.0, -0.0, 1e-310, -1e-310, np.inf,
                                                       -np.inf, 5e-324, 1.0, 1.0]))
    keys = _keys(values)
    assert np.array_equal(np.argsort(keys, kind="stable"), np.argsort(values, kind="stable"))
    assert keys[-9] == keys[-8]  # -0.0 and 0.0 are equal depths


@pytest.mark.parametrize("spread", ["wide", "narrow", "ties"])
def test_sort_segments_is_a_stable_argsort(spread: str) -> None:
    """Each segment comes out as np.argsort(kind="stable") of its keys: segments empty,
    single, short (insertion), long (buckets) and long with clustered keys (buckets
    too full for insertion, then LSD radix)."""
    rng = np.random.default_rng({"wide": 1, "narrow": 2, "ties": 3}[spread])
    lengths = np.array([0, 1, 2, 5, 24, 25, 100, 3000, 0, 7, 20000])
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    n = int(offsets[-1])
    if spread == "wide":
        depths = rng.uniform(0.01, 1e4, n)
    elif spread == "narrow":  # a few depths with many near-equal neighbours
        depths = rng.choice([1.0, 2.5, 7.0], n) + rng.integers(0, 40, n) * 1e-15
    else:
        depths = rng.choice([1.0, 1.5, 2.0, -0.0, 0.0], n)
    keys = _keys(depths)  # the key of value v is keys[v]
    values = rng.permutation(n).astype(np.int64)
    out = np.full(n, -1, dtype=np.int64)
    order = rng.permutation(lengths.size).astype(np.int64)
    sort_segments(offsets, order, keys, values, out)
    for s in range(lengths.size):
        segment = values[offsets[s]:offsets[s + 1]]
        expected = segment[np.argsort(depths[segment], kind="stable")]
        assert np.array_equal(out[offsets[s]:offsets[s + 1]], expected), s


def _binned(seed: int, tile_size: int) -> tuple:
    means, quats, scales, opacities, colors, viewmat, K, width, height = random_scene(
        seed, count=400, width=90, height=61, channels=3)

    def host(t: torch.Tensor, dtype: torch.dtype = torch.float32) -> np.ndarray:
        return t.to(dtype).contiguous().numpy()

    binning = bin_splats(host(means), host(quats), host(scales), host(opacities),
                         host(colors), host(viewmat, torch.float64), host(K, torch.float64),
                         width, height, 0.01, 1e10, 0.3, False, True, tile_size)
    return binning, width, height


@pytest.mark.parametrize("tile_size", [4, 16])
def test_tile_lists_match_a_numpy_construction(tile_size: int) -> None:
    """Rebuilt with numpy from each splat's tile spans: every tile's list holds the
    splats reaching it by (depth, Gaussian index); rows are grouped by the tile holding
    their centre (then by index); tiles are handed out longest list first."""
    binning, width, height = _binned(7, tile_size)
    splats, ids = binning.splats, binning.ids
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    assert splats.shape[0] > 50
    tiles, rows = [], []
    for row in range(splats.shape[0]):
        mean_x, mean_y, p, q, r = splats[row, :5]
        reach2, radius_x, radius_y, reach = splats[row, [6, 7, 8, 11]]
        row0, row1 = kernels._row_span(mean_y, radius_y, reach, tile_size, tiles_y)
        for tile_row in range(row0, row1):
            col0, col1 = kernels._column_span(
                mean_x, mean_y, p, q, r, reach2, reach, radius_x,
                kernels._extreme_dy(q, r, reach2), tile_row, tile_size, tiles_x)
            for col in range(col0, col1):
                tiles.append(tile_row * tiles_x + col)
                rows.append(row)
    tiles, rows = np.array(tiles), np.array(rows)
    order = np.lexsort((ids[rows], splats[rows, kernels.DEPTH], tiles))
    counts = np.bincount(tiles, minlength=tiles_x * tiles_y)
    assert np.array_equal(binning.tile_offsets, np.concatenate(([0], np.cumsum(counts))))
    assert np.array_equal(binning.tile_lists, rows[order])
    # Every tile once (the order balances threads: tests/test_raster_numba.py).
    assert np.array_equal(np.sort(binning.tile_order), np.arange(counts.size))
    home = (np.clip(np.floor(splats[:, 1] / tile_size), 0, tiles_y - 1) * tiles_x
            + np.clip(np.floor(splats[:, 0] / tile_size), 0, tiles_x - 1))
    assert np.array_equal(np.lexsort((ids, home)), np.arange(ids.size))


def test_tile_lists_hold_every_tile_a_splat_shades() -> None:
    """Brute force over pixel centres: a splat is listed at every tile holding a pixel
    centre inside its alpha >= 1/255 ellipse, and only at tiles of gsplat's box."""
    tile_size = 8
    binning, width, height = _binned(11, tile_size)
    splats, tiles_x = binning.splats, -(-width // tile_size)
    listed = set()
    for tile in range(binning.tile_order.size):
        for row in binning.tile_lists[binning.tile_offsets[tile]:binning.tile_offsets[tile + 1]]:
            listed.add((int(row), tile))
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    pixel_tiles = (ys // tile_size).astype(int) * tiles_x + (xs // tile_size).astype(int)
    shaded = 0
    for row in range(splats.shape[0]):
        mean_x, mean_y, p, q, r, opacity = splats[row, :6]
        dx, dy = xs - mean_x, ys - mean_y
        sigma = 0.5 * ((p * dx + q * dy) ** 2 + (r * dy) ** 2)
        inside = sigma <= math.log(255.0 * opacity) - 1e-9
        must = set(np.unique(pixel_tiles[inside]).tolist())
        shaded += bool(must)
        mine = {tile for (r_, tile) in listed if r_ == row}
        assert must <= mine, row
        radius_x, radius_y = splats[row, 7], splats[row, 8]
        box_x = (math.floor((mean_x - radius_x) / tile_size),
                 math.ceil((mean_x + radius_x) / tile_size))
        box_y = (math.floor((mean_y - radius_y) / tile_size),
                 math.ceil((mean_y + radius_y) / tile_size))
        for tile in mine:
            assert box_x[0] <= tile % tiles_x < box_x[1], row
            assert box_y[0] <= tile // tiles_x < box_y[1], row
    assert shaded > 50
