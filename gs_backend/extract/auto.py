"""The automatic instrument extraction: which Gaussians of an orbit capture are the tool.

A capture made by orbiting an instrument (paper section 2.2, Fig. 2) holds the tool,
dense around the orbit's centre, and much else: the table it lies on, the room far away
and sparse, floaters in the free space near it, and large faint "halo" Gaussians wrapped
around it. The capture comes in any SfM units and axes, so nothing here is a length or a
direction fixed in advance: every threshold is a multiple of something measured on the
capture itself (neighbour distances, the Gaussians' own sizes and opacities), and the
only fixed numbers are ratios.

The method, stage by stage (each reports what it removed and what it chose):

1. ``auto.distance`` (the paper's rule: keep what is centred). On a random subsample,
   the distance to the 8th nearest neighbour measures local density. The orbit centre is
   the coordinate-wise median of the densest 10 %; the object's extent is the 98th
   percentile of the distance from the centre over the denser half. Everything farther
   than ``DISTANCE_FACTOR`` times that extent (the far room) is dropped.
2. ``auto.floor``: a table under the tool is a large plane touching it. On a subsample,
   each point stands for the area around it (its nearest-neighbour distance squared,
   capped at the 90th percentile), so a sparse table outweighs the dense tool. RANSAC
   (planes through 3 points drawn in proportion to area, scored by the area within the
   median nearest-neighbour distance) proposes a plane; an area-weighted least-squares
   fit refines it while its window grows to 3 robust standard deviations (1.4826 MAD)
   of the residuals. The band's half width is ``FLOOR_BAND_SIGMAS`` of those. The plane
   is a floor only if (a) its noise settled (a window still growing by more than
   ``FLOOR_SETTLED`` is a curved surface, e.g. across a tool's end), (b) it holds at
   least ``FLOOR_MIN_SHARE`` of the points, (c) its points spread in two directions (a
   slab through a long thin tool is a strip: in-plane extent ratio >=
   ``FLOOR_MIN_SPREAD``), (d) the dense points off it lie on one side (>=
   ``FLOOR_MIN_SIDE``: a tool rests *on* a table) and (e) not higher than the plane's
   own radius (a tool lies on a table; the disk across a tool's end is small beside
   the tool's length). Up to ``FLOOR_PLANES_TRIED`` planes are tried, each without
   the previous one's points. Then the band and everything under it are dropped,
   except, in the band, Gaussians smaller than ``FLOOR_SIZE_RATIO`` times the table's
   own (its area-weighted median size): the tool's, where it rests on the table.
3. ``auto.halo``: for each Gaussian, its size (largest standard deviation) and opacity
   are compared with the medians of its 12 nearest neighbours. A halo is much larger
   (>= ``HALO_SIZE_RATIO``) and much fainter (<= ``HALO_OPACITY_RATIO``) than the
   Gaussians around it: those are the tool's own, since a halo is centred on the tool.
4. ``auto.components``: two Gaussians touch when their centres are closer than the sum
   of their sizes (``LINK_FACTOR`` times), tested on each Gaussian's 12 nearest
   neighbours. This follows sparse thin parts, where 3DGS puts few large elongated
   Gaussians, and leaves floaters (alone or in small clumps in free space) apart. The
   largest connected part is the tool; other parts at least ``MIN_PART_SHARE`` of its size
   are kept too (a jaw the capture left detached).

Limits (measured on the synthetic captures of :mod:`gs_backend.synthetic.capture`): a
table with far fewer Gaussians than the tool (e.g. 260 large ones under a 3,000-Gaussian
needle driver) is not found, and stays attached to the tool; a tool standing upright on
its table, or one with a large flat part, may not be told from a table. Crop volumes
and colour keys (the manual controls) are for those.

Neighbour queries use scipy's ``cKDTree`` and the components scipy's ``csgraph``: well
kept, compiled, multi-threaded (``workers=-1``), so a 1M-Gaussian capture takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

DENSITY_NEIGHBOURS = 8
SUBSAMPLE = 50_000
DISTANCE_FACTOR = 3.0
RANSAC_PLANES = 512
FLOOR_BAND_SIGMAS = 3.0
FLOOR_MIN_SHARE = 0.05
FLOOR_MIN_SPREAD = 0.3
FLOOR_MIN_SIDE = 0.9
FLOOR_PLANES_TRIED = 3
FLOOR_SIZE_RATIO = 0.7
FLOOR_REFINE_STEPS = 6
FLOOR_SETTLED = 1.5
NEIGHBOURS = 12
HALO_SIZE_RATIO = 3.0
HALO_OPACITY_RATIO = 0.5
LINK_FACTOR = 1.0
MIN_PART_SHARE = 0.01


@dataclass(frozen=True)
class StageReport:
    """What one stage removed, and the parameters it chose (for ``--json``)."""

    name: str
    removed: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AutoResult:
    """``keep``: ``[N]`` bool, the rows judged to be the instrument; ``stages`` in order."""

    keep: np.ndarray
    stages: tuple[StageReport, ...]


def auto_extract(
    means: np.ndarray,  # [N, 3] float32, capture (PLY) coordinates, any unit and axes
    scales: np.ndarray,  # [N, 3] float32 linear standard deviations
    opacities: np.ndarray,  # [N] float32 in (0, 1)
    candidates: np.ndarray,  # [N] bool: rows to consider (usable and not cropped away)
    *,
    seed: int = 0,
) -> AutoResult:
    """The rows of ``candidates`` that belong to the instrument (see the module docstring).

    Args:
        seed: seeds the subsampling and RANSAC (the result is deterministic).
    """
    rows = np.flatnonzero(np.asarray(candidates, dtype=bool))
    keep = np.zeros(len(candidates), dtype=bool)
    if rows.size < DENSITY_NEIGHBOURS + 1:
        keep[rows] = True
        return AutoResult(keep=keep, stages=())
    rng = np.random.default_rng(seed)
    points = np.asarray(means, dtype=np.float64)[rows]
    sizes = np.asarray(scales, dtype=np.float64)[rows].max(axis=1)
    opacity = np.asarray(opacities, dtype=np.float64)[rows]

    stages = []
    alive, report = _distance_stage(points, rng)
    stages.append(report)
    alive, report = _floor_stage(points, sizes, alive, rng)
    stages.append(report)
    alive, reports = _halo_and_components(points, sizes, opacity, alive)
    stages.extend(reports)
    keep[rows[alive]] = True
    return AutoResult(keep=keep, stages=tuple(stages))


def _subsample(count: int, rng: np.random.Generator) -> np.ndarray:
    if count <= SUBSAMPLE:
        return np.arange(count)
    return np.sort(rng.choice(count, SUBSAMPLE, replace=False))


def _distance_stage(points: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, StageReport]:
    """Drop what lies far from the orbit centre (stage 1)."""
    sample = points[_subsample(points.shape[0], rng)]
    k = min(DENSITY_NEIGHBOURS, sample.shape[0] - 1)
    spacing = cKDTree(sample).query(sample, k=k + 1, workers=-1)[0][:, -1]
    centre = np.median(sample[spacing <= np.quantile(spacing, 0.1)], axis=0)
    dense = spacing <= np.median(spacing)
    extent = float(np.quantile(np.linalg.norm(sample[dense] - centre, axis=1), 0.98))
    radius = DISTANCE_FACTOR * extent
    alive = np.linalg.norm(points - centre, axis=1) <= radius
    return alive, StageReport("auto.distance", int((~alive).sum()), {
        "centre": [float(c) for c in centre], "extent": extent, "radius": radius})


def _floor_stage(points: np.ndarray, sizes: np.ndarray, alive: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, StageReport]:
    """Drop a table under the tool, if there is one (stage 2)."""
    live = np.flatnonzero(alive)
    sample_rows = live[_subsample(live.size, rng)]
    sample = points[sample_rows]
    if sample.shape[0] < 16:
        return alive, StageReport("auto.floor", 0, {"found": False})
    nearest = cKDTree(sample).query(sample, k=2, workers=-1)[0][:, 1]
    tol = float(np.median(nearest))
    # The area each sample point stands for, capped so that lone far points do not
    # dominate: a sparse table then outweighs the dense tool lying on it.
    area = np.minimum(nearest**2, np.quantile(nearest**2, 0.9))
    left = np.ones(sample.shape[0], dtype=bool)
    tried = []
    plane = None
    for _ in range(FLOOR_PLANES_TRIED):
        plane = _fit_floor(sample, left, area, nearest <= tol, tol, rng)
        if plane is None:
            break
        tried.append(plane.params)
        if plane.found:
            break
        left &= np.abs(plane.residual) > plane.band  # not this one: look for the next
    if plane is None or not plane.found:
        return alive, StageReport("auto.floor", 0, {"found": False, "planes": tried})
    height = (points[live] - plane.origin) @ plane.up
    floor = height <= plane.band
    # The tool rests on the table: in the band, Gaussians much smaller than the table's
    # own are the tool's (the components stage drops any left alone). The table's size
    # is the median over its area, so the dense tool lying in the band does not count.
    on_plane = np.abs(plane.residual) <= plane.band
    floor_size = _weighted_median(sizes[sample_rows[on_plane]], area[on_plane])
    floor &= ~((height >= -plane.band) & (sizes[live] <= FLOOR_SIZE_RATIO * floor_size))
    out = alive.copy()
    out[live[floor]] = False
    return out, StageReport("auto.floor", int(floor.sum()), {
        **plane.params, "planes": len(tried), "normal": [float(c) for c in plane.up],
        "origin": [float(c) for c in plane.origin], "floor_size": floor_size})


@dataclass(frozen=True)
class _Plane:
    """A candidate floor: unit normal ``up`` (towards the tool), a point, the band's half
    width, the residuals of the sample points and the acceptance figures."""

    up: np.ndarray
    origin: np.ndarray
    band: float
    residual: np.ndarray
    found: bool
    params: dict[str, Any]


def _fit_floor(
    sample: np.ndarray,  # [M, 3] subsample of the points
    left: np.ndarray,  # [M] bool, not on a plane tried before
    area: np.ndarray,  # [M] area each point stands for
    dense: np.ndarray,  # [M] bool, the denser half
    tol: float,  # RANSAC's inlier distance
    rng: np.random.Generator,
) -> _Plane | None:
    """The plane of largest area through the ``left`` points, refined (area-weighted),
    with the floor tests (a)-(e) of the module docstring."""
    if left.sum() < 16:
        return None
    normal, origin = _ransac_plane(sample[left], area[left], tol, rng)
    residual = (sample - origin) @ normal
    window = used = tol
    for _ in range(FLOOR_REFINE_STEPS):  # grow the window to hold the noise (3 sigma)
        used = window
        near = left & (np.abs(residual) <= used)
        weight = area[near] / area[near].sum()
        origin = weight @ sample[near]
        centred = (sample[near] - origin) * np.sqrt(weight)[:, None]
        axes = np.linalg.svd(centred, full_matrices=False)[2]
        normal = axes[2]
        residual = (sample - origin) @ normal
        sigma = 1.4826 * _weighted_median(np.abs(residual[near]), weight)
        window = max(tol, 3.0 * sigma)
    band = max(FLOOR_BAND_SIGMAS * sigma, tol * 1e-6)
    inliers = left & (np.abs(residual) <= band)
    share = float(inliers.sum() / left.size)
    # The shape of the plane's points, counted alike (not by area): a table is a disk,
    # a slab through a long thin tool is a strip.
    in_plane = np.linalg.svd(sample[inliers] - sample[inliers].mean(axis=0),
                             compute_uv=False) / np.sqrt(max(int(inliers.sum()), 1))
    spread = float(in_plane[1] / max(in_plane[0], 1e-300))
    off = (np.abs(residual) > band) & dense
    above = float((residual[off] > 0).mean()) if off.any() else 0.5
    side = max(above, 1.0 - above)
    sign = 1.0 if above >= 0.5 else -1.0
    height = float(np.quantile(sign * residual[off], 0.95)) if off.any() else 0.0
    extent = 2.0 * float(in_plane[0])  # about the plane's radius
    # A plane's noise settles within a few steps; a window still growing is a curved
    # surface (e.g. across a tool's end), not a plane.
    settled = window <= FLOOR_SETTLED * used
    found = bool(settled and share >= FLOOR_MIN_SHARE and spread >= FLOOR_MIN_SPREAD
                 and side >= FLOOR_MIN_SIDE and height <= extent)
    return _Plane(sign * normal, origin, band, sign * residual, found,
                  {"found": found, "settled": bool(settled), "share": share,
                   "spread": spread, "side": side, "height": height, "extent": extent,
                   "band": band})


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _ransac_plane(points: np.ndarray, area: np.ndarray, tol: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unit normal ``[3]`` and a point ``[3]`` of the plane through 3 of ``points`` whose
    points within ``tol`` cover the largest ``area`` (``[N]``, each point's share)."""
    # Triples drawn in proportion to area too, so a sparse table gets sampled.
    triples = points[rng.choice(points.shape[0], (RANSAC_PLANES, 3), p=area / area.sum())]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    length = np.linalg.norm(normals, axis=1)
    valid = length > 0
    normals = normals[valid] / length[valid, None]
    origins = triples[valid, 0]
    best, best_score = 0, -1.0
    for start in range(0, normals.shape[0], 32):
        n, o = normals[start:start + 32], origins[start:start + 32]
        residual = points @ n.T - np.sum(n * o, axis=1)
        scores = area @ (np.abs(residual) <= tol)
        if scores.max() > best_score:
            best, best_score = start + int(scores.argmax()), float(scores.max())
    return normals[best], origins[best]


def _halo_and_components(points: np.ndarray, sizes: np.ndarray, opacity: np.ndarray,
                         alive: np.ndarray) -> tuple[np.ndarray, list[StageReport]]:
    """Drop halos (stage 3), then everything not connected to the tool (stage 4)."""
    live = np.flatnonzero(alive)
    k = min(NEIGHBOURS, live.size - 1)
    if k < 1:
        return alive, []
    p, s, o = points[live], sizes[live], opacity[live]
    dist, nb = cKDTree(p).query(p, k=k + 1, workers=-1)
    dist, nb = dist[:, 1:], nb[:, 1:]
    size_ratio = s / np.maximum(np.median(s[nb], axis=1), 1e-300)
    opacity_ratio = o / np.maximum(np.median(o[nb], axis=1), 1e-300)
    halo = (size_ratio >= HALO_SIZE_RATIO) & (opacity_ratio <= HALO_OPACITY_RATIO)
    halo_report = StageReport("auto.halo", int(halo.sum()), {
        "size_ratio": HALO_SIZE_RATIO, "opacity_ratio": HALO_OPACITY_RATIO, "neighbours": k})

    link = (dist <= LINK_FACTOR * (s[:, None] + s[nb])) & ~halo[:, None] & ~halo[nb]
    src = np.repeat(np.arange(live.size), k)[link.ravel()]
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, nb.ravel()[link.ravel()])),
                       shape=(live.size, live.size))
    _, label = connected_components(graph, directed=True, connection="weak")
    label[halo] = -1
    counts = np.bincount(label[~halo], minlength=1)
    largest = int(counts.max())
    parts = np.flatnonzero(counts >= MIN_PART_SHARE * largest)
    tool = np.isin(label, parts)
    out = np.zeros_like(alive)
    out[live[tool]] = True
    removed = int((~tool).sum() - halo.sum())
    return out, [halo_report, StageReport("auto.components", removed, {
        "link_factor": LINK_FACTOR, "largest": largest, "parts": int(parts.size),
        "min_part": int(np.ceil(MIN_PART_SHARE * largest))})]
