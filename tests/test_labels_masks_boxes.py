"""Visible-instance map and per-instance boxes (DESIGN contract 4)."""

from __future__ import annotations

import numpy as np
import pytest

from gs_backend.labels import Box, InstanceStats, instance_stats, visible_instance_map


def reference_instance_map(weights: np.ndarray, threshold: float) -> np.ndarray:
    """Obvious per-pixel rule: first channel holding the maximum, if >= threshold."""
    h, w, _ = weights.shape
    out = np.zeros((h, w), np.uint16)
    for y in range(h):
        for x in range(w):
            values = [0.0 if np.isnan(v) else float(v) for v in weights[y, x]]
            best = max(values)
            if best >= np.float32(threshold):
                out[y, x] = values.index(best) + 1
    return out


def reference_stats(instance_map: np.ndarray, num_instances: int) -> dict[int, tuple]:
    """Pixel count and inclusive extents from np.nonzero, one id at a time."""
    out = {}
    for k in range(1, num_instances + 1):
        ys, xs = np.nonzero(instance_map == k)
        if ys.size:
            out[k] = (ys.size, xs.min(), ys.min(), xs.max(), ys.max())
    return out


# --- visible_instance_map --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_instance_map_matches_per_pixel_reference(seed, k):
    rng = np.random.default_rng(seed)
    # Quarter steps make exact ties and exact-threshold values frequent.
    weights = (rng.integers(0, 5, size=(23, 17, k)) / 4).astype(np.float32)
    for threshold in (0.25, 0.5, 0.75):
        got = visible_instance_map(weights, threshold)
        assert got.dtype == np.uint16 and got.shape == (23, 17)
        np.testing.assert_array_equal(got, reference_instance_map(weights, threshold))


@pytest.mark.parametrize("seed", [10, 11])
def test_instance_map_continuous_weights(seed):
    rng = np.random.default_rng(seed)
    weights = rng.random((31, 29, 4)).astype(np.float32) * 0.6
    got = visible_instance_map(weights, 0.3)
    np.testing.assert_array_equal(got, reference_instance_map(weights, 0.3))
    assert 0 < np.count_nonzero(got) < got.size  # the threshold matters here


def test_threshold_is_inclusive_in_float32():
    below = np.nextafter(np.float32(0.5), np.float32(0))
    weights = np.array([[[0.5], [below], [1.0], [0.0]]], np.float32)
    np.testing.assert_array_equal(visible_instance_map(weights, 0.5), [[1, 0, 1, 0]])
    # 0.1 is not a float32: the comparison uses float32(0.1), so that value is visible
    weights = np.array([[[np.float32(0.1)], [np.nextafter(np.float32(0.1), np.float32(0))]]])
    np.testing.assert_array_equal(visible_instance_map(weights, 0.1), [[1, 0]])


def test_ties_go_to_the_lowest_id():
    weights = np.array([[[0.6, 0.6, 0.1], [0.3, 0.6, 0.6], [0.2, 0.3, 0.7], [0.5, 0.5, 0.5]]],
                       np.float32)
    np.testing.assert_array_equal(visible_instance_map(weights, 0.5), [[1, 2, 3, 1]])


def test_zero_instruments_gives_an_empty_map():
    got = visible_instance_map(np.zeros((4, 6, 0), np.float32), 0.5)
    assert got.shape == (4, 6) and got.dtype == np.uint16 and not got.any()


def test_nan_weight_counts_as_zero_and_input_is_untouched():
    weights = np.array([[[np.nan, 0.7], [0.8, np.nan], [np.nan, np.nan], [np.nan, 0.2]]],
                       np.float32)
    before = weights.copy()
    np.testing.assert_array_equal(visible_instance_map(weights, 0.5), [[2, 1, 0, 0]])
    np.testing.assert_array_equal(visible_instance_map(weights[..., :1], 0.5), [[0, 1, 0, 0]])
    np.testing.assert_array_equal(weights, before)  # NaN patching happened on copies


def test_strided_and_float64_inputs():
    rng = np.random.default_rng(5)
    planes = rng.random((12, 14, 3 + 3))  # float64, RGB + 3 weight channels
    weights = planes[:, ::-1, 3:]  # non-contiguous view
    expected = reference_instance_map(weights.astype(np.float32), 0.4)
    np.testing.assert_array_equal(visible_instance_map(weights, 0.4), expected)
    np.testing.assert_array_equal(visible_instance_map(weights > 0.5, 0.4),
                                  reference_instance_map((weights > 0.5).astype(np.float32), 0.4))
    # float32 weight columns of a wider array (the renderer's RGB + weights planes), NaN too
    planes32 = planes.astype(np.float32)
    planes32[0, :3, 4] = np.nan
    before = planes32.copy()
    columns = planes32[..., 3:]
    expected = reference_instance_map(columns, 0.4)
    np.testing.assert_array_equal(visible_instance_map(columns, 0.4), expected)
    np.testing.assert_array_equal(planes32, before)


def test_many_channels_beyond_opencv_split_limit():
    rng = np.random.default_rng(7)
    weights = rng.random((3, 4, 520)).astype(np.float32)
    weights[1, 2, 517] = 2.0  # a clear winner with a high id
    got = visible_instance_map(weights, 0.5)
    np.testing.assert_array_equal(got, reference_instance_map(weights, 0.5))
    assert got[1, 2] == 518


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        visible_instance_map(np.zeros((4, 4), np.float32), 0.5)


# --- Box and instance_stats ------------------------------------------------------------------


def test_box_helpers():
    box = Box(xmin=3, ymin=5, xmax=7, ymax=5)
    assert (box.width, box.height) == (5, 1)
    assert box.as_xyxy() == (3, 5, 8, 6)
    assert box.as_xywh() == (3, 5, 5, 1)
    for bad in ((4, 0, 3, 0), (0, 2, 0, 1), (-1, 0, 0, 0)):
        with pytest.raises(ValueError):
            Box(*bad)


def test_occlusion_split_gives_one_box_over_all_fragments():
    instance_map = np.zeros((40, 60), np.uint16)
    instance_map[10:20, 5:50] = 1  # instrument 1: a bar ...
    instance_map[0:40, 25:30] = 2  # ... cut in two by instrument 2 in front
    instance_map[30, 55] = 1  # and a stray fragment far away
    stats = instance_stats(instance_map, 3)
    assert set(stats) == {1, 2}  # id 3 is absent
    assert stats[1] == InstanceStats(instance_id=1, pixels=10 * 40 + 1,
                                     box=Box(xmin=5, ymin=10, xmax=55, ymax=30))
    assert stats[2].box == Box(xmin=25, ymin=0, xmax=29, ymax=39)
    assert stats[2].pixels == 5 * 40
    assert stats[1].box.as_xyxy() == (5, 10, 56, 31)  # edges at pixel borders


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_stats_match_nonzero_reference_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 90, size=2)
    n = int(rng.integers(1, 7))
    instance_map = np.zeros((h, w), np.uint16)
    for k in range(1, n + 1):  # a few random rectangles per id, painted over each other
        for _ in range(rng.integers(0, 3)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            instance_map[y0 : y0 + rng.integers(1, 30), x0 : x0 + rng.integers(1, 30)] = k
    noise = rng.random((h, w)) < 0.02
    instance_map[noise] = rng.integers(0, n + 1, size=int(noise.sum()))
    stats = instance_stats(instance_map, n)
    expected = reference_stats(instance_map, n)
    assert list(stats) == sorted(expected)
    for k, (count, xmin, ymin, xmax, ymax) in expected.items():
        assert stats[k].instance_id == k
        assert stats[k].pixels == count
        assert stats[k].box == Box(int(xmin), int(ymin), int(xmax), int(ymax))


def test_stats_of_visible_map_and_other_dtypes():
    rng = np.random.default_rng(3)
    weights = rng.random((50, 70, 3)).astype(np.float32)
    instance_map = visible_instance_map(weights, 0.6)
    expected = reference_stats(instance_map, 3)
    for dtype in (np.uint16, np.int32, np.int64, np.uint8):
        stats = instance_stats(instance_map.astype(dtype), 3)
        assert {k: s.pixels for k, s in stats.items()} == {k: v[0] for k, v in expected.items()}


def test_ids_above_num_instances_are_ignored_and_bad_maps_raise():
    instance_map = np.array([[0, 1, 4], [2, 2, 9]], np.int32)
    assert set(instance_stats(instance_map, 2)) == {1, 2}
    assert instance_stats(instance_map, 0) == {}
    assert instance_stats(np.zeros((0, 5), np.uint16), 3) == {}
    with pytest.raises(ValueError):
        instance_stats(np.array([[0, -1]], np.int32), 2)
    with pytest.raises(ValueError):
        instance_stats(np.zeros((2, 2, 1), np.uint16), 2)


def test_stats_of_a_strided_view():
    rng = np.random.default_rng(4)
    instance_map = rng.integers(0, 4, size=(30, 40)).astype(np.uint16)
    view = instance_map[::-1, 1::3]
    expected = reference_stats(np.ascontiguousarray(view), 3)
    stats = instance_stats(view, 3)
    assert {k: (s.pixels, s.box.xmin, s.box.ymin, s.box.xmax, s.box.ymax)
            for k, s in stats.items()} == expected
