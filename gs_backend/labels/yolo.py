"""YOLO label rows in the Ultralytics text format.

One row per object; an image with no objects gets an empty file.

- detect: ``class x_center y_center width height``
- segment: ``class x1 y1 x2 y2 ...`` (one polygon, at least 3 points)

``class`` is the integer class index; every other value is normalised by the
image width (x) or height (y) into [0, 1] and written with :data:`DECIMALS`
decimals (1e-6 of 1920 px is 0.002 px).

Geometry convention: image coordinates put (0, 0) at the top-left corner of the
top-left pixel, so pixel (col, row) covers ``[col, col + 1] x [row, row + 1]``
(DESIGN contract 2). A detect row describes the box edges at pixel borders
(contract 4). A segment polygon traces the *outline of the visible pixels*
along pixel borders: its vertices are pixel corners, its edges run between
pixels, its area equals the pixel count (holes aside, see
:func:`instance_polygon`), and its bounding box is exactly the detect box, so
Ultralytics' box-from-segment (``segments2boxes``) agrees with the detect
labels.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import cv2
import numpy as np

from gs_backend.labels.boxes import Box

DECIMALS = 6  # digits after the decimal point of every normalised value


def yolo_detect_row(class_index: int, box: Box, width: int, height: int) -> str:
    """``class x_center y_center width height`` for a box in a ``width x height`` image.

    Args:
        class_index: the class' position in the scenario's ``classes`` (>= 0).
        box: tight pixel box; its pixels must lie inside the image.
        width: image width in pixels.
        height: image height in pixels.
    """
    _check_row_inputs(class_index, width, height)
    if box.xmax >= width or box.ymax >= height:
        raise ValueError(f"{box} does not fit a {width}x{height} image")
    x0, y0, x1, y1 = box.as_xyxy()  # edges at pixel borders
    values = ((x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height)
    return _row(class_index, values)


def yolo_segment_row(
    class_index: int,
    mask: np.ndarray,  # [H, W] bool, the instance's visible pixels
    width: int,
    height: int,
    tolerance: float = 0.0,
) -> str | None:
    """``class x1 y1 x2 y2 ...``: the instance's outline as one normalised polygon.

    Args:
        class_index: the class' position in the scenario's ``classes`` (>= 0).
        mask: ``[H, W]`` visible pixels of the instance; ``H, W`` must be
            ``height, width``.
        width: image width in pixels.
        height: image height in pixels.
        tolerance: outline simplification in pixels, see :func:`instance_polygon`.

    Returns:
        The row, or ``None`` when the mask is empty.
    """
    _check_row_inputs(class_index, width, height)
    if mask.shape != (height, width):
        raise ValueError(f"mask has shape {mask.shape}, expected ({height}, {width})")
    polygon = instance_polygon(mask, tolerance)
    if polygon is None:
        return None
    normalised = np.clip(polygon / np.array([width, height], np.float64), 0.0, 1.0)
    return _row(class_index, normalised.ravel())


def yolo_label_text(rows: Iterable[str]) -> str:
    """A label file's content: one row per line, ``""`` when there is no row."""
    return "".join(f"{row}\n" for row in rows)


def instance_polygon(
    mask: np.ndarray,  # [H, W] bool
    tolerance: float = 0.0,
) -> np.ndarray | None:  # [P, 2] float64 (x, y) image coordinates, P >= 3
    """One polygon covering every fragment of an instance, in image coordinates.

    Each fragment's outer outline follows the pixel borders exactly (vertices on
    pixel corners). Method: OpenCV traces the outer contours (``RETR_EXTERNAL``)
    on a lattice at half-pixel resolution whose points are the corners, edge
    midpoints and centres of the pixels, a point being set when it lies in the
    closed union of the visible pixels. That trace skips the corner of each
    concave turn (its 4-neighbours are all set) and steps diagonally past it;
    the skipped corner is put back, then collinear points are dropped. Pixels
    touching only at a corner form one fragment (the outline passes through
    that corner twice).

    Several fragments (an instrument split by an occluder) are joined into one
    polygon: the fragments are linked by a minimum spanning tree over the
    shortest vertex-to-vertex distance between them, and the outline walks each
    link out and back, a zero-width bridge. Bridges add no area under either
    the even-odd or the non-zero fill rule; rasterisers that draw polygon edges
    (``cv2.fillPoly``) paint them as a thin line.

    Holes (and anything inside them) are covered: a YOLO polygon cannot carry
    holes.

    Args:
        mask: ``[H, W]`` visible pixels of one instance (nonzero = visible).
        tolerance: maximum distance in pixels between the exact outline and the
            returned one (Douglas-Peucker on each fragment). 0, the default,
            keeps the exact outline, whose pixel staircase costs many vertices
            (~1,400 for a disc of radius 300 px); 1 px brings that disc to
            ~150. A fragment that would drop below 3 points keeps its exact
            outline.

    Returns:
        ``[P, 2]`` float64 ``(x, y)`` vertices, or ``None`` for an empty mask.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    rings = _fragment_outlines(mask != 0 if mask.dtype != bool else mask)
    if not rings:
        return None
    if tolerance > 0:
        rings = [_simplify(ring, tolerance) for ring in rings]
    return _join_fragments(rings)


# --- outlines -------------------------------------------------------------------------------


def _fragment_outlines(mask: np.ndarray) -> list[np.ndarray]:
    """Exact outer outline of each fragment: list of ``[n, 2]`` float64 image coordinates."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    lattice = _closed_lattice(mask[y0 : y1 + 1, x0 : x1 + 1])
    contours, _ = cv2.findContours(lattice, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    origin = np.array([x0, y0], np.float64)
    rings = []
    for contour in contours:
        points = contour[:, 0, :].astype(np.int64) - 1  # undo the 1-point frame
        ring = _drop_collinear(_restore_corners(points))
        rings.append(ring / 2.0 + origin)
    return rings


def _closed_lattice(crop: np.ndarray) -> np.ndarray:  # [h, w] bool -> [2h+3, 2w+3] uint8
    """Half-pixel lattice of the closed pixel union, framed by one empty point.

    Lattice point ``(2r + 1, 2c + 1)`` (before the frame) is the centre of pixel
    ``(r, c)`` and even coordinates lie on pixel borders, so point ``(i, j)``
    sits at image position ``(j / 2, i / 2)`` relative to the crop. A point is
    set when a pixel touching it is set. Built as: each pixel becomes a 2x2
    block (it owns the lattice points ``2r..2r+1``), then every point takes the
    OR of the block cells up and left of it (a 2x2 dilation), which adds the
    pixel's far border ``2r + 2``.
    """
    h, w = crop.shape
    blocks = cv2.resize(crop.view(np.uint8), (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    framed = cv2.copyMakeBorder(blocks, 1, 2, 1, 2, cv2.BORDER_CONSTANT, value=0)
    up_left = np.ones((2, 2), np.uint8)  # with anchor (1, 1): rows i-1..i, columns j-1..j
    return cv2.dilate(framed, up_left, anchor=(1, 1), borderType=cv2.BORDER_CONSTANT,
                      borderValue=0)


def _restore_corners(points: np.ndarray) -> np.ndarray:  # [n, 2] int lattice -> [m, 2]
    """Put back the concave-turn corners that the 8-connected trace steps over.

    Every traced point lies on a pixel border line (one even coordinate); a
    diagonal step joins a point on a vertical border to one on a horizontal
    border, and of the two lattice points completing the step exactly one is a
    pixel corner (both coordinates even): the corner that was skipped.
    """
    following = np.roll(points, -1, axis=0)
    diagonal = (np.abs(following - points) == 1).all(axis=1)
    if not diagonal.any():
        return points
    corner_a = np.stack([points[:, 0], following[:, 1]], axis=1)
    corner_b = np.stack([following[:, 0], points[:, 1]], axis=1)
    a_is_corner = (corner_a % 2 == 0).all(axis=1, keepdims=True)
    corners = np.where(a_is_corner, corner_a, corner_b)
    slots = np.arange(len(points)) + np.cumsum(diagonal) - diagonal  # slot of each old point
    out = np.empty((len(points) + int(diagonal.sum()), 2), points.dtype)
    out[slots] = points
    out[slots[diagonal] + 1] = corners[diagonal]
    return out


def _drop_collinear(ring: np.ndarray) -> np.ndarray:  # [n, 2] -> [m, 2], m >= 4
    """Keep only the points where the (axis-aligned, unit-step) outline turns."""
    step_in = ring - np.roll(ring, 1, axis=0)
    step_out = np.roll(ring, -1, axis=0) - ring
    return ring[(step_in != step_out).any(axis=1)]


def _simplify(ring: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker within ``tolerance`` pixels; the exact ring if that leaves < 3 points."""
    simplified = cv2.approxPolyDP(ring.astype(np.float32)[:, None, :], tolerance, closed=True)
    return ring if len(simplified) < 3 else simplified[:, 0, :].astype(np.float64)


# --- joining fragments ----------------------------------------------------------------------

_PAIR_CHUNK = 1 << 20  # distance-matrix entries computed at once (bounds memory)


def _join_fragments(rings: list[np.ndarray]) -> np.ndarray:
    """One closed walk over all rings, linked by out-and-back bridges along an MST."""
    if len(rings) == 1:
        return rings[0]
    root = int(np.argmax([abs(_signed_area(r)) for r in rings]))  # start on the main body
    neighbours: list[list[tuple[int, int, int]]] = [[] for _ in rings]
    for i, j, at_i, at_j in _spanning_links(rings):
        neighbours[i].append((at_i, j, at_j))
        neighbours[j].append((at_j, i, at_i))
    # Orient the tree away from the root: children[node] = [(vertex, child, child vertex)].
    children: list[list[tuple[int, int, int]]] = [[] for _ in rings]
    seen = {root}
    queue = [root]
    while queue:
        node = queue.pop()
        for at_node, other, at_other in neighbours[node]:
            if other not in seen:
                seen.add(other)
                children[node].append((at_node, other, at_other))
                queue.append(other)
    return _walk(rings, children, root)


def _spanning_links(rings: list[np.ndarray]) -> list[tuple[int, int, int, int]]:
    """Minimum spanning tree of the rings under their nearest-vertex distance.

    Kruskal with lazy distances: pairs are taken in order of a cheap lower bound
    (the gap between their bounding boxes) and the exact nearest-vertex distance
    is computed only for pairs not yet connected, when the bound comes up. An
    exact distance is accepted once no remaining bound is smaller, so the tree
    is exact while most pairs (far apart, or already joined) cost nothing.

    Returns:
        ``(i, j, vertex in ring i, vertex in ring j)`` for each of the
        ``len(rings) - 1`` links.
    """
    count = len(rings)
    lows = np.array([r.min(axis=0) for r in rings])
    highs = np.array([r.max(axis=0) for r in rings])
    gaps = np.maximum(lows[None, :, :] - highs[:, None, :], lows[:, None, :] - highs[None, :, :])
    first, second = np.triu_indices(count, k=1)
    bounds = (np.maximum(gaps, 0.0) ** 2).sum(axis=2)[first, second]
    order = np.argsort(bounds, kind="stable")

    component = list(range(count))  # union-find

    def find(i: int) -> int:
        while component[i] != i:
            component[i] = component[component[i]]
            i = component[i]
        return i

    exact: list[tuple[float, int, int, int, int]] = []  # heap of computed distances
    links: list[tuple[int, int, int, int]] = []
    next_pair = 0
    while len(links) < count - 1:
        if exact and (next_pair == len(order) or exact[0][0] <= bounds[order[next_pair]]):
            _, i, j, at_i, at_j = heapq.heappop(exact)
            root_i, root_j = find(i), find(j)
            if root_i != root_j:
                component[root_i] = root_j
                links.append((i, j, at_i, at_j))
            continue
        pair = order[next_pair]
        next_pair += 1
        i, j = int(first[pair]), int(second[pair])
        if find(i) != find(j):
            d, at_i, at_j = _nearest_vertices(rings[i], rings[j])
            heapq.heappush(exact, (d, i, j, at_i, at_j))
    return links


def _walk(rings: list[np.ndarray], children: list[list[tuple[int, int, int]]],
          root: int) -> np.ndarray:
    """Concatenate the rings depth-first, each child entered and left at its bridge vertex."""
    pieces: list[np.ndarray] = []
    # Work items: an array of points to emit, or (ring, start vertex, close the loop).
    stack: list[np.ndarray | tuple[int, int, bool]] = [(root, 0, False)]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            pieces.append(item)
            continue
        node, start, close = item
        ring = np.roll(rings[node], -start, axis=0)
        n = len(ring)
        links = sorted(((vertex - start) % n, child, at_child)
                       for vertex, child, at_child in children[node])
        items: list[np.ndarray | tuple[int, int, bool]] = []
        previous = 0
        for position, child, at_child in links:
            items.append(ring[previous : position + 1])  # up to and including the bridge vertex
            items.append((child, at_child, True))  # the child, back at its bridge vertex
            previous = position  # then the bridge vertex again, and on
        items.append(ring[previous:])
        if close:
            items.append(ring[:1])
        stack.extend(reversed(items))
    return np.concatenate(pieces)


def _nearest_vertices(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """Smallest squared distance between a vertex of ``a`` and one of ``b``, and the two indices.

    Exact, but pruned: a coarse sample of both rings bounds the answer by some
    radius r, and only vertices within r of the other ring's bounding box can
    beat it, usually the few that face each other across the gap.
    """
    sample_a, sample_b = a[:: max(1, len(a) // 64)], b[:: max(1, len(b) // 64)]
    radius = np.sqrt(_nearest_brute(sample_a, sample_b)[0]) * (1 + 1e-9) + 1e-9  # + rounding
    near_a = np.flatnonzero(_box_distance(a, b) <= radius)
    near_b = np.flatnonzero(_box_distance(b, a[near_a]) <= radius)
    d, i, j = _nearest_brute(a[near_a], b[near_b])
    return d, int(near_a[i]), int(near_b[j])


def _box_distance(points: np.ndarray, others: np.ndarray) -> np.ndarray:  # [n, 2] -> [n]
    """Distance of each point to the bounding box of ``others``."""
    below = others.min(axis=0) - points
    above = points - others.max(axis=0)
    return np.hypot(*np.maximum(np.maximum(below, above), 0.0).T)


def _nearest_brute(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """All-pairs search, chunked to bound memory."""
    best, best_i, best_j = np.inf, 0, 0
    chunk = max(1, _PAIR_CHUNK // len(b))
    for start in range(0, len(a), chunk):
        part = a[start : start + chunk]
        d = ((part[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        i, j = divmod(int(np.argmin(d)), len(b))
        if d[i, j] < best:
            best, best_i, best_j = float(d[i, j]), start + i, j
    return best, best_i, best_j


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# --- formatting -----------------------------------------------------------------------------


def _check_row_inputs(class_index: int, width: int, height: int) -> None:
    if isinstance(class_index, bool) or int(class_index) != class_index or class_index < 0:
        raise ValueError(f"class index must be an integer >= 0, got {class_index!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")


def _row(class_index: int, values: Iterable[float]) -> str:
    numbers = values.tolist() if isinstance(values, np.ndarray) else [float(v) for v in values]
    # One %-format over the tuple: ~3x faster than a generator of f-strings on long polygons.
    return f"{int(class_index)}" + (f" %.{DECIMALS}f" * len(numbers)) % tuple(numbers)
