"""YOLO rows (Ultralytics text format) and instance polygons."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from gs_backend.labels import (
    Box,
    instance_polygon,
    instance_stats,
    yolo_detect_row,
    yolo_label_text,
    yolo_segment_row,
)

# --- an independent reader of the Ultralytics rules ------------------------------------------

NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def parse_row(row: str, task: str) -> tuple[int, np.ndarray]:
    """Check one label row against the Ultralytics rules; return (class, values)."""
    assert "\n" not in row and row == row.strip()
    tokens = row.split(" ")
    assert re.fullmatch(r"\d+", tokens[0]), f"class must be a plain integer: {tokens[0]!r}"
    assert all(NUMBER.match(t) for t in tokens[1:]), row
    values = np.array([float(t) for t in tokens[1:]])
    assert np.all((values >= 0) & (values <= 1)), "values must be normalised to [0, 1]"
    if task == "detect":
        assert len(values) == 4
    else:
        assert len(values) % 2 == 0 and len(values) >= 6, "a polygon needs >= 3 (x, y) points"
    return int(tokens[0]), values


def pixel_polygon(row: str, width: int, height: int) -> np.ndarray:
    _, values = parse_row(row, "segment")
    return values.reshape(-1, 2) * [width, height]


def fill_poly(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """How Ultralytics rasterises a polygon (polygon2mask): cv2.fillPoly on int32 points."""
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [np.round(points).astype(np.int32)], 1)
    return out.astype(bool)


def even_odd_at_pixel_centres(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Exact point-in-polygon (even-odd) at every pixel centre (x + 0.5, y + 0.5)."""
    h, w = shape
    px = np.arange(w)[None, :, None] + 0.5
    py = np.arange(h)[:, None, None] + 0.5
    x0, y0 = points[:, 0], points[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    spans = (y0 > py) != (y1 > py)  # [h, 1, E]
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
    crossings = spans & (px < x_cross)  # [h, w, E]
    return (crossings.sum(axis=2) % 2).astype(bool)


def filled(mask: np.ndarray) -> np.ndarray:
    """The mask with its holes filled (OpenCV's own outer contours, drawn filled)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def blob_mask(rng: np.random.Generator, shape: tuple[int, int], density: float) -> np.ndarray:
    noise = (rng.random(shape) < density).astype(np.uint8)
    return cv2.dilate(noise, np.ones((3, 3), np.uint8), iterations=int(rng.integers(0, 3))) > 0


# --- detect rows -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detect_row_denormalises_to_the_pixel_border_box(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        width, height = (int(v) for v in rng.integers(1, 2000, size=2))
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, size=2))
        cls = int(rng.integers(0, 12))
        got_cls, (cx, cy, w, h) = parse_row(
            yolo_detect_row(cls, Box(x0, y0, x1, y1), width, height), "detect")
        assert got_cls == cls
        tol = 1e-6 * max(width, height)  # 6 decimals
        assert abs((cx - w / 2) * width - x0) <= tol and abs((cx + w / 2) * width - (x1 + 1)) <= tol
        assert abs((cy - h / 2) * height - y0) <= tol
        assert abs((cy + h / 2) * height - (y1 + 1)) <= tol


def test_detect_row_of_a_split_instance_matches_mask_extents():
    instance_map = np.zeros((48, 64), np.uint16)
    instance_map[5:15, 3:20] = 1
    instance_map[30:41, 40:61] = 1  # second fragment of the same instrument
    box = instance_stats(instance_map, 1)[1].box
    _, (cx, cy, w, h) = parse_row(yolo_detect_row(0, box, 64, 48), "detect")
    ys, xs = np.nonzero(instance_map)
    np.testing.assert_allclose([(cx - w / 2) * 64, (cx + w / 2) * 64],
                               [xs.min(), xs.max() + 1], atol=1e-4)
    np.testing.assert_allclose([(cy - h / 2) * 48, (cy + h / 2) * 48],
                               [ys.min(), ys.max() + 1], atol=1e-4)


def test_full_image_box_and_bad_inputs():
    _, values = parse_row(yolo_detect_row(2, Box(0, 0, 639, 479), 640, 480), "detect")
    np.testing.assert_allclose(values, [0.5, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError):
        yolo_detect_row(0, Box(0, 0, 640, 10), 640, 480)  # outside the image
    with pytest.raises(ValueError):
        yolo_detect_row(-1, Box(0, 0, 1, 1), 640, 480)
    with pytest.raises(ValueError):
        yolo_detect_row(1.5, Box(0, 0, 1, 1), 640, 480)


def test_label_text():
    assert yolo_label_text([]) == ""  # empty file when nothing is visible
    text = yolo_label_text(["0 0.5 0.5 0.1 0.1", "1 0.2 0.2 0.1 0.1"])
    assert text.splitlines() == ["0 0.5 0.5 0.1 0.1", "1 0.2 0.2 0.1 0.1"]
    assert text.endswith("\n")


# --- polygons: exactness ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", list(range(8)))
def test_polygon_is_the_exact_outline_of_the_filled_mask(seed):
    """Rasterised exactly at pixel centres, the polygon gives back the mask (holes filled),
    whatever the number of fragments, pinches and concave corners."""
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 48)), int(rng.integers(1, 48)))
    mask = blob_mask(rng, shape, density=float(rng.choice([0.01, 0.05, 0.2, 0.5])))
    polygon = instance_polygon(mask)
    if not mask.any():
        assert polygon is None
        return
    assert polygon.ndim == 2 and polygon.shape[1] == 2 and len(polygon) >= 3
    np.testing.assert_array_equal(even_odd_at_pixel_centres(polygon, shape), filled(mask))
    # Vertices sit on pixel corners and the outline spans exactly the box borders.
    np.testing.assert_array_equal(polygon, np.round(polygon))
    ys, xs = np.nonzero(mask)
    np.testing.assert_array_equal(polygon.min(axis=0), [xs.min(), ys.min()])
    np.testing.assert_array_equal(polygon.max(axis=0), [xs.max() + 1, ys.max() + 1])


def shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def test_simple_shapes_exact_vertices_and_area():
    single = np.zeros((5, 6), bool)
    single[2, 3] = True
    poly = instance_polygon(single)
    assert {tuple(p) for p in poly} == {(3, 2), (4, 2), (3, 3), (4, 3)} and len(poly) == 4

    ell = np.zeros((20, 20), bool)
    ell[2:15, 3:7] = True
    ell[11:15, 7:16] = True
    poly = instance_polygon(ell)
    assert len(poly) == 6  # an L has six corners, no collinear points
    assert shoelace(poly) == ell.sum()

    ring = np.zeros((30, 30), np.uint8)
    cv2.circle(ring, (15, 15), 10, 1, thickness=3)
    poly = instance_polygon(ring.astype(bool))
    assert shoelace(poly) == filled(ring.astype(bool)).sum()  # the hole is covered


def test_pixels_touching_at_a_corner_form_one_fragment():
    mask = np.zeros((4, 4), bool)
    mask[1, 1] = mask[2, 2] = True
    poly = instance_polygon(mask)
    assert len(poly) == 8  # two squares, the shared corner (2, 2) visited twice
    assert sum(tuple(p) == (2.0, 2.0) for p in poly) == 2
    assert shoelace(poly) == 2


# --- polygons: how Ultralytics will see them ---------------------------------------------------


def shapes(width: int, height: int) -> dict[str, np.ndarray]:
    out = {}
    disc = np.zeros((height, width), np.uint8)
    cv2.circle(disc, (70, 60), 25, 1, -1)
    out["disc"] = disc
    rect = np.zeros((height, width), np.uint8)
    rect[20:70, 30:130] = 1
    out["rectangle"] = rect
    ell = np.zeros((height, width), np.uint8)
    ell[10:90, 20:45] = 1
    ell[65:90, 45:140] = 1
    out["L"] = ell
    two = np.zeros((height, width), np.uint8)
    cv2.circle(two, (40, 40), 18, 1, -1)
    cv2.ellipse(two, (140, 75), (30, 14), 25, 0, 360, 1, -1)
    out["two blobs"] = two
    rotated = np.zeros((height, width), np.uint8)
    corners = cv2.boxPoints(((100, 55), (150, 22), 35)).astype(np.int32)
    cv2.fillPoly(rotated, [corners], 1)
    out["rotated bar"] = rotated
    return {k: v.astype(bool) for k, v in out.items()}


@pytest.mark.parametrize("name", ["disc", "rectangle", "L", "two blobs", "rotated bar"])
@pytest.mark.parametrize("tolerance", [0.0, 1.0])
def test_segment_row_rasterises_back_to_the_mask(name, tolerance):
    width, height = 200, 120
    mask = shapes(width, height)[name]
    row = yolo_segment_row(3, mask, width, height, tolerance=tolerance)
    assert row is not None and parse_row(row, "segment")[0] == 3
    points = pixel_polygon(row, width, height)
    raster = fill_poly(points, (height, width))
    assert iou(raster, mask) >= 0.9
    ys, xs = np.nonzero(mask)
    outside_box = raster.copy()
    outside_box[max(ys.min() - 1, 0) : ys.max() + 2, max(xs.min() - 1, 0) : xs.max() + 2] = False
    assert not outside_box.any(), "never more than 1 px outside the mask's box"
    if tolerance == 0:  # the exact outline, seen at pixel centres, is the mask
        np.testing.assert_array_equal(even_odd_at_pixel_centres(points, mask.shape), mask)


def test_two_fragment_polygon_touches_both_fragments():
    width, height = 200, 120
    mask = shapes(width, height)["two blobs"]
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    assert count == 3  # background + two fragments
    points = pixel_polygon(yolo_segment_row(0, mask, width, height), width, height)
    raster = fill_poly(points, mask.shape)
    padded = np.pad(labels, 1)
    for fragment in (1, 2):
        part = labels == fragment
        assert np.count_nonzero(raster & part) >= 0.95 * np.count_nonzero(part)
        # some vertex is a corner of one of this fragment's pixels
        xi, yi = np.round(points).astype(int).T
        around = np.stack([padded[yi + dy, xi + dx] for dy in (0, 1) for dx in (0, 1)])
        assert (around == fragment).any()


def test_tolerance_reduces_vertices_and_stays_close():
    mask = shapes(200, 120)["disc"]
    exact = instance_polygon(mask)
    coarse = instance_polygon(mask, tolerance=1.0)
    assert len(coarse) < len(exact) / 2
    # Douglas-Peucker keeps a subset of the exact vertices
    assert {tuple(p) for p in coarse} <= {tuple(p) for p in exact}
    assert abs(shoelace(coarse) - mask.sum()) < 0.05 * mask.sum()


def test_many_fragments_join_into_one_exact_polygon():
    rng = np.random.default_rng(42)
    mask = rng.random((60, 80)) < 0.04  # dozens of isolated pixels
    count, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    assert count > 30
    polygon = instance_polygon(mask)
    np.testing.assert_array_equal(even_odd_at_pixel_centres(polygon, mask.shape), mask)


def test_empty_mask_and_shape_checks():
    empty = np.zeros((10, 12), bool)
    assert instance_polygon(empty) is None
    assert yolo_segment_row(0, empty, 12, 10) is None
    with pytest.raises(ValueError):
        yolo_segment_row(0, empty, 10, 12)  # width/height swapped
    with pytest.raises(ValueError):
        instance_polygon(empty, tolerance=-1.0)
    full = np.ones((10, 12), np.uint8)  # non-bool masks: nonzero = visible
    _, values = parse_row(yolo_segment_row(1, full, 12, 10), "segment")
    assert {tuple(p) for p in values.reshape(-1, 2)} == {(0, 0), (1, 0), (0, 1), (1, 1)}


def test_fragments_are_bridged_along_the_shortest_links():
    mask = np.zeros((20, 80), bool)
    mask[5:10, 2:7] = True  # A
    mask[5:10, 17:22] = True  # B: 10 px right of A
    mask[5:10, 42:47] = True  # C: 20 px right of B, 35 px right of A
    polygon = instance_polygon(mask)
    edges = np.linalg.norm(np.roll(polygon, -1, axis=0) - polygon, axis=1)
    # three 5x5 outlines plus the A-B and B-C bridges, each walked out and back
    assert edges.max() == 20
    assert edges.sum() == 3 * 20 + 2 * (10 + 20)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_vertex_search_matches_brute_force(seed):
    from gs_backend.labels.yolo import _nearest_vertices

    rng = np.random.default_rng(seed)
    for _ in range(20):
        a = rng.integers(0, 400, size=(int(rng.integers(1, 300)), 2)) / 2.0
        b = rng.integers(0, 400, size=(int(rng.integers(1, 300)), 2)) / 2.0 + rng.integers(0, 200)
        brute = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        d, i, j = _nearest_vertices(a, b)
        assert d == brute.min() and brute[i, j] == d


def test_strided_mask_views_give_the_same_polygon():
    rng = np.random.default_rng(9)
    mask = blob_mask(rng, (50, 70), 0.05)
    view = mask[::-1, ::2]
    np.testing.assert_array_equal(instance_polygon(view),
                                  instance_polygon(np.ascontiguousarray(view)))
    np.testing.assert_array_equal(even_odd_at_pixel_centres(instance_polygon(view), view.shape),
                                  filled(np.ascontiguousarray(view)))
