"""Synthetic raw orbit captures with known membership (issue 7, paper section 2.2).

A lab's instrument splat comes from orbiting the instrument with a camera and training
3DGS on the images, so it holds much more than the instrument. :func:`make_capture`
builds such a capture with every row labelled (:class:`Label`):

- ``TOOL``: the instrument, surface-aligned Gaussians (:mod:`gs_backend.synthetic.surfels`),
  one of :data:`SHAPES`: the demo's needle driver, a grasper with long thin flat jaws, a
  J hook of thin wire, a dissector with jaws curving sideways, a fenestrated grasper whose
  jaws are thin wire loops. Thin parts (jaws, a hook's wire) can be *sparse*: few large,
  elongated Gaussians, as 3DGS represents them.
- ``FLOOR``: the table it lies on: a dense, slightly noisy plane touching the tool (the
  tool is tilted, so it rests on one point of the table).
- ``BACKGROUND``: the room, far away and sparse (3 to 12 tool lengths), large Gaussians.
- ``FLOATER``: small to medium, faint Gaussians in the free space near the tool, alone or
  in small clumps, some a few Gaussian sizes off its surface.
- ``HALO``: large faint Gaussians centred on the instrument, wrapping it (3 to 10 times
  the size of the tool Gaussians under them).

Then the whole capture gets one random similarity (SfM captures come in any axes and
units): a uniform random rotation, a global scale (``scale``, e.g. 1e-3 to 1e2) and a
translation of up to 20 tool lengths. The rows are shuffled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from scipy.spatial import cKDTree

from gs_backend.sh_rotation import rotate_sh
from gs_backend.synthetic.instrument import make_needle_driver
from gs_backend.synthetic.surfels import (
    ParametricSurface,
    rgb_to_sh_dc,
    sample_parametric,
    surfel_gaussians,
)
from gs_contract.splats import SH_C0, save_inria_ply

Shape = Literal["needle_driver", "grasper", "hook", "curved", "fenestrated"]
SHAPES: tuple[Shape, ...] = ("needle_driver", "grasper", "hook", "curved", "fenestrated")

_STEEL = (0.36, 0.37, 0.39)
_BLACK = (0.06, 0.06, 0.07)
_MM = 1e-3
# Clutter of a capture, relative to the instrument (see make_capture's arguments).
FLOOR_DENSITY = 0.05
BACKGROUND_SHARE = 0.3
FLOATER_SHARE = 0.08
HALO_SHARE = 0.06


class Label(IntEnum):
    """Ground truth of one capture row."""

    TOOL = 0
    FLOOR = 1
    BACKGROUND = 2
    FLOATER = 3
    HALO = 4


@dataclass(frozen=True)
class Capture:
    """A raw orbit capture, every row labelled.

    Attributes:
        means: ``[N, 3]`` float32 centres (capture units, any axes).
        quats: ``[N, 4]`` float32 unit rotations, wxyz.
        scales: ``[N, 3]`` float32 linear standard deviations.
        opacities: ``[N]`` float32 in (0, 1).
        sh: ``[N, (sh_degree + 1)^2, 3]`` float32, DC first.
        labels: ``[N]`` int8 :class:`Label` values.
        tool_length: the instrument's length in capture units.
    """

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    labels: np.ndarray
    tool_length: float

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    def save(self, path: str | Path) -> None:
        """Write the capture as an Inria PLY (atomically); the labels are not stored."""
        save_inria_ply(path, self.means, self.quats, self.scales, self.opacities, self.sh)


def make_capture(
    shape: Shape = "needle_driver",
    *,
    tool_count: int = 20_000,
    floor: bool = True,
    floor_density: float = FLOOR_DENSITY,
    background_share: float = BACKGROUND_SHARE,
    floater_share: float = FLOATER_SHARE,
    halo_share: float = HALO_SHARE,
    sparse_parts: bool = True,
    scale: float = 1.0,
    sh_degree: int = 0,
    seed: int = 0,
) -> Capture:
    """A labelled raw orbit capture of one instrument (see the module docstring).

    Args:
        shape: the instrument, one of :data:`SHAPES`.
        tool_count: Gaussians on the instrument (about).
        floor: put the instrument on a table.
        floor_density: table Gaussians per unit area, relative to the instrument's own
            (the table extends 0.55 to 0.8 tool lengths around it).
        background_share, floater_share, halo_share: counts relative to ``tool_count``.
        sparse_parts: thin parts get a quarter of the density (larger Gaussians).
        scale: global scale of the capture (capture units per metre).
        sh_degree: SH degree of the output; only the needle driver has view-dependent
            terms, every other row has its colour in the DC term.
        seed: random seed; same arguments, same capture.
    """
    rng = np.random.default_rng(seed)
    tool = _make_tool(shape, tool_count, sparse_parts, rng)
    tool.opacities = np.clip(rng.beta(4.0, 1.0, tool.count), 0.02, 0.995)
    pose = _rest_on_table(tool, rng)
    tool.means = tool.means @ pose[:3, :3].T + pose[:3, 3]
    tool.quats = _quat_multiply(_matrix_to_quat(pose[:3, :3]), tool.quats)
    length = float(np.ptp(tool.means, axis=0).max())
    rows = _Rows.concat([tool, *_clutter(
        tool, length, tool_count, rng, floor_density=floor_density if floor else None,
        background_share=background_share, floater_share=floater_share,
        halo_share=halo_share)])

    world_from_table = _random_rotation(rng)
    rotation = world_from_table @ pose[:3, :3]
    translation = rng.normal(size=3)
    translation *= rng.uniform(0.0, 20.0) * length * scale / np.linalg.norm(translation)
    means = scale * rows.means @ world_from_table.T + translation
    quats = _quat_multiply(_matrix_to_quat(world_from_table), rows.quats)
    sh = _sh(rows, sh_degree, rotation)
    order = rng.permutation(rows.count)
    return Capture(
        means=means[order].astype(np.float32),
        quats=quats[order].astype(np.float32),
        scales=(scale * rows.scales[order]).astype(np.float32),
        opacities=np.clip(rows.opacities[order], 1e-4, 1 - 1e-4).astype(np.float32),
        sh=sh[order].astype(np.float32),
        labels=rows.labels[order].astype(np.int8),
        tool_length=length * scale,
    )


def capture_around(
    means: np.ndarray,  # [M, 3] an instrument's Gaussians in its own frame (metres)
    quats: np.ndarray,  # [M, 4] wxyz
    scales: np.ndarray,  # [M, 3]
    opacities: np.ndarray,  # [M]
    sh: np.ndarray,  # [M, K, 3]
    *,
    seed: int = 0,
    floor_density: float = FLOOR_DENSITY,
    background_share: float = BACKGROUND_SHARE,
    floater_share: float = FLOATER_SHARE,
    halo_share: float = HALO_SHARE,
) -> Capture:
    """A raw capture of a given instrument, in the instrument's own frame.

    The instrument's rows come first, unchanged (so extracting them gives back the
    instrument exactly, coordinates included); a table under it (the instrument rests on
    it, tilted, as in :func:`make_capture`), the far room, floaters and halos follow,
    moved into the instrument's frame. For the demo: its instruments as raw captures.
    """
    rng = np.random.default_rng(seed)
    m = means.shape[0]
    rgb = np.clip(0.5 + SH_C0 * np.asarray(sh[:, 0], np.float64), 0.0, 1.0)
    tool = _Rows(np.asarray(means, np.float64), np.asarray(quats, np.float64),
                 np.asarray(scales, np.float64), np.asarray(opacities, np.float64), rgb,
                 np.full(m, Label.TOOL))
    table_from_tool = _rest_on_table(tool, rng)
    rotation, translation = table_from_tool[:3, :3], table_from_tool[:3, 3]
    on_table = _Rows(tool.means @ rotation.T + translation,
                     _quat_multiply(_matrix_to_quat(rotation), tool.quats), tool.scales,
                     tool.opacities, rgb, tool.labels)
    length = float(np.ptp(on_table.means, axis=0).max())
    clutter = _Rows.concat(_clutter(
        on_table, length, max(m, 1), rng, floor_density=floor_density,
        background_share=background_share, floater_share=floater_share,
        halo_share=halo_share))
    back = rotation.T  # tool_from_table
    clutter_sh = np.zeros((clutter.count, sh.shape[1], 3))
    clutter_sh[:, 0] = rgb_to_sh_dc(clutter.rgb)
    return Capture(
        means=np.concatenate([means, (clutter.means - translation) @ back.T]).astype(np.float32),
        quats=np.concatenate([quats, _quat_multiply(_matrix_to_quat(back), clutter.quats)]
                             ).astype(np.float32),
        scales=np.concatenate([scales, clutter.scales]).astype(np.float32),
        opacities=np.concatenate([opacities, np.clip(clutter.opacities, 1e-4, 1 - 1e-4)]
                                 ).astype(np.float32),
        sh=np.concatenate([sh, clutter_sh]).astype(np.float32),
        labels=np.concatenate([tool.labels, clutter.labels]).astype(np.int8),
        tool_length=length,
    )


def _clutter(tool: _Rows, length: float, count: int, rng: np.random.Generator, *,
             floor_density: float | None, background_share: float, floater_share: float,
             halo_share: float) -> list[_Rows]:
    """What a capture holds besides the tool (resting on the table, table frame): the
    table (unless ``floor_density`` is None), the room, floaters, halos; counts relative
    to ``count``. The draws happen in this order (same seed, same capture)."""
    parts = [] if floor_density is None else [_floor(tool, length, floor_density, rng)]
    parts.append(_background(length, round(background_share * count), rng))
    parts.append(_floaters(tool, length, round(floater_share * count), rng))
    parts.append(_halos(tool, round(halo_share * count), rng))
    return parts


@dataclass
class _Rows:
    """Gaussians being assembled (float64, metres); ``sh``: the needle driver's SH or None."""

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    rgb: np.ndarray
    labels: np.ndarray
    sh: np.ndarray | None = None

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        names = ("means", "quats", "scales", "opacities", "rgb", "labels")
        joined = {n: np.concatenate([getattr(p, n) for p in parts]) for n in names}
        sh = parts[0].sh  # only the tool (first) may carry SH
        return _Rows(**joined, sh=sh)


def _sh(rows: _Rows, degree: int, tool_rotation: np.ndarray) -> np.ndarray:
    """``[N, (degree+1)^2, 3]``: DC from ``rgb``; the tool's own bands rotated with it."""
    sh = np.zeros((rows.count, (degree + 1) ** 2, 3))
    sh[:, 0] = rgb_to_sh_dc(rows.rgb)
    if degree > 0 and rows.sh is not None:
        bands = torch.from_numpy(rows.sh[:, : (degree + 1) ** 2])
        rotated = rotate_sh(bands, torch.from_numpy(tool_rotation)).numpy()
        sh[: rotated.shape[0], 1:] = rotated[:, 1:]
    return sh


# --- the instrument -------------------------------------------------------------------

def _make_tool(shape: Shape, count: int, sparse: bool, rng: np.random.Generator) -> _Rows:
    """The instrument in its own frame (tip near the origin, axis +x, metres)."""
    if shape == "needle_driver":
        g = make_needle_driver(count, seed=int(rng.integers(1 << 30)),
                               jaw_opening_deg=float(rng.uniform(0.0, 30.0)))
        sh = g.sh.double().numpy()
        rgb = np.clip(0.5 + 0.28209479177387814 * sh[:, 0], 0.0, 1.0)
        return _Rows(g.means.double().numpy(), g.quats.double().numpy(),
                     g.scales.double().numpy(), g.opacities.double().numpy(), rgb,
                     np.full(g.count, Label.TOOL), sh)
    thin = 0.25 if sparse else 1.0
    parts = _PART_BUILDERS[shape](rng)
    weights = np.array([_area(p[0]) * (thin if p[1] else 1.0) for p in parts])
    counts = np.maximum(16, np.round(count * weights / weights.sum())).astype(int)
    rows = []
    for (surface, _, rgb), n in zip(parts, counts, strict=True):
        samples = sample_parametric(surface, int(n), rng, periodic_v=True)
        colour = np.clip(np.asarray(rgb) * (1.0 + rng.normal(0.0, 0.05, (samples.count, 1))),
                         0.0, 1.0)
        dc = rgb_to_sh_dc(colour)[:, None, :]
        g = surfel_gaussians(samples, dc, np.ones(samples.count), overlap=0.9, flatness=0.15)
        rows.append(_Rows(g.means.double().numpy(), g.quats.double().numpy(),
                          g.scales.double().numpy(), g.opacities.double().numpy(), colour,
                          np.full(g.count, Label.TOOL)))
    return _Rows.concat(rows)


Part = tuple[ParametricSurface, bool, tuple[float, float, float]]  # surface, thin, colour


def _grasper(rng: np.random.Generator) -> list[Part]:
    """Straight shaft, wrist, two long thin flat jaws opened 20-60 degrees."""
    half_open = np.radians(rng.uniform(20.0, 60.0)) / 2
    hinge = np.array([20 * _MM, 0.0, 0.0])
    y = np.array([0.0, 1.0, 0.0])
    parts: list[Part] = [
        (_tube(30 * _MM, 330 * _MM, 2.5 * _MM, 2.5 * _MM), False, _BLACK),
        (_tube(20 * _MM, 30 * _MM, 1.6 * _MM, 2.5 * _MM), False, _STEEL),
    ]
    for side in (+1, -1):
        jaw = _swept(_line(hinge, np.zeros(3)), lambda u: 0.25 * _MM + 0 * u,
                     lambda u: (0.9 - 0.4 * u) * _MM, y)
        parts.append((_rotated(jaw, _rot_y(side * half_open), hinge), True, _STEEL))
    return parts


def _hook(rng: np.random.Generator) -> list[Part]:
    """Straight shaft, insulated cone, a thin wire bent into a J (monopolar hook)."""
    bend = rng.uniform(0.55, 0.85) * np.pi
    radius = rng.uniform(2.0, 3.5) * _MM
    y = np.array([0.0, 1.0, 0.0])
    start = np.array([4 * _MM, 0.0, 0.0])

    def arc(u: np.ndarray) -> np.ndarray:
        t = bend * u
        return start + radius * np.stack([-np.sin(t), 0 * t, 1.0 - np.cos(t)], axis=1)

    wire = 0.4 * _MM
    return [
        (_tube(20 * _MM, 330 * _MM, 2.5 * _MM, 2.5 * _MM), False, _BLACK),
        (_tube(12 * _MM, 20 * _MM, 0.9 * _MM, 2.5 * _MM), False, (0.1, 0.1, 0.12)),
        (_tube(4 * _MM, 12 * _MM, wire, wire), True, _STEEL),
        (_swept(arc, lambda u: wire + 0 * u, lambda u: wire + 0 * u, y), True, _STEEL),
    ]


def _curved(rng: np.random.Generator) -> list[Part]:
    """Straight shaft, wrist, two jaws curving sideways (a Maryland-like dissector)."""
    half_open = np.radians(rng.uniform(0.0, 30.0)) / 2
    rho = rng.uniform(12.0, 20.0) * _MM
    sweep = 16 * _MM / rho
    hinge = np.array([16 * _MM, 0.0, 0.0])
    z = np.array([0.0, 0.0, 1.0])
    parts: list[Part] = [
        (_tube(25 * _MM, 320 * _MM, 2.5 * _MM, 2.5 * _MM), False, _BLACK),
        (_tube(16 * _MM, 25 * _MM, 1.8 * _MM, 2.5 * _MM), False, _STEEL),
    ]
    for side in (+1, -1):
        lift = np.array([0.0, 0.0, side * 0.35 * _MM])

        def centre(u: np.ndarray, lift: np.ndarray = lift) -> np.ndarray:
            t = sweep * u
            return hinge + lift + rho * np.stack([-np.sin(t), 1.0 - np.cos(t), 0 * t], axis=1)

        jaw = _swept(centre, lambda u: (1.1 - 0.5 * u) * _MM, lambda u: (0.35 - 0.1 * u) * _MM, z)
        parts.append((_rotated(jaw, _rot_y(side * half_open), hinge), True, _STEEL))
    return parts


def _fenestrated(rng: np.random.Generator) -> list[Part]:
    """Straight shaft, wrist, two jaws that are thin wire loops (a fenestrated grasper)."""
    half_open = np.radians(rng.uniform(10.0, 50.0)) / 2
    half_length = rng.uniform(7.0, 10.0) * _MM
    half_width = rng.uniform(1.2, 2.0) * _MM
    hinge = np.array([2 * half_length, 0.0, 0.0])
    z = np.array([0.0, 0.0, 1.0])
    wire = 0.35 * _MM
    parts: list[Part] = [
        (_tube(2 * half_length + 8 * _MM, 0.3, 2.5 * _MM, 2.5 * _MM), False, _BLACK),
        (_tube(2 * half_length, 2 * half_length + 8 * _MM, 1.8 * _MM, 2.5 * _MM), False,
         _STEEL),
    ]
    for side in (+1, -1):
        middle = np.array([half_length, 0.0, side * wire])

        def loop(u: np.ndarray, middle: np.ndarray = middle) -> np.ndarray:
            t = 2 * np.pi * u
            return middle + np.stack([half_length * np.cos(t), half_width * np.sin(t), 0 * t],
                                     axis=1)

        jaw = _swept(loop, lambda u: wire + 0 * u, lambda u: wire + 0 * u, z)
        parts.append((_rotated(jaw, _rot_y(side * half_open), hinge), True, _STEEL))
    return parts


_PART_BUILDERS: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "grasper": _grasper, "hook": _hook, "curved": _curved, "fenestrated": _fenestrated,
}


def _line(p0: np.ndarray, p1: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: p0 + u[:, None] * (p1 - p0)


def _tube(x0: float, x1: float, r0: float, r1: float) -> ParametricSurface:
    """Truncated cone along +x from ``x0`` (radius ``r0``) to ``x1`` (``r1``)."""
    return _swept(_line(np.array([x0, 0.0, 0.0]), np.array([x1, 0.0, 0.0])),
                  lambda u: r0 + (r1 - r0) * u, lambda u: r0 + (r1 - r0) * u,
                  np.array([0.0, 1.0, 0.0]))


def _swept(
    centre: Callable[[np.ndarray], np.ndarray],  # u [N] -> [N, 3]
    half_a: Callable[[np.ndarray], np.ndarray],  # u [N] -> [N], along binormal x tangent
    half_b: Callable[[np.ndarray], np.ndarray],  # u [N] -> [N], along the binormal
    binormal: np.ndarray,  # [3] unit normal of the (planar) centre line's plane
) -> ParametricSurface:
    """An elliptical section swept along a planar centre line (derivatives by differences)."""
    eps = 1e-5

    def section(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        tangent = centre(u + eps) - centre(u - eps)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        normal = np.cross(binormal, tangent)
        phi = 2 * np.pi * v
        return (centre(u) + (half_a(u) * np.cos(phi))[:, None] * normal
                + (half_b(u) * np.sin(phi))[:, None] * binormal)

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d_du = (section(u + eps, v) - section(u - eps, v)) / (2 * eps)
        d_dv = (section(u, v + eps) - section(u, v - eps)) / (2 * eps)
        return section(u, v), d_du, d_dv

    return surface


def _rotated(surface: ParametricSurface, rotation: np.ndarray, pivot: np.ndarray
             ) -> ParametricSurface:
    def moved(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p, du, dv = surface(u, v)
        return (p - pivot) @ rotation.T + pivot, du @ rotation.T, dv @ rotation.T

    return moved


def _area(surface: ParametricSurface) -> float:
    """Area of a parametric surface (16 x 16 midpoint rule)."""
    u, v = np.meshgrid((np.arange(16) + 0.5) / 16, (np.arange(16) + 0.5) / 16, indexing="ij")
    _, du, dv = surface(u.ravel(), v.ravel())
    return float(np.linalg.norm(np.cross(du, dv), axis=1).mean())


# --- the rest of the capture ----------------------------------------------------------

def _rest_on_table(tool: _Rows, rng: np.random.Generator) -> np.ndarray:
    """``[4, 4]`` table_from_tool: rolled about its axis, tilted 3-20 degrees, lowest
    Gaussian centre on the table (z = 0), centred over the origin."""
    rotation = (_rot_z(rng.uniform(0, 2 * np.pi)) @ _rot_y(rng.choice([-1, 1])
                * np.radians(rng.uniform(3.0, 20.0))) @ _rot_x(rng.uniform(0, 2 * np.pi)))
    posed = tool.means @ rotation.T
    lo, hi = posed.min(axis=0), posed.max(axis=0)
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = [-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]]
    return pose


def _floor(tool: _Rows, length: float, density: float, rng: np.random.Generator) -> _Rows:
    """A noisy disk of flat Gaussians at z = 0 (table frame), centred under the tool."""
    tool_area = np.median(tool.scales[:, 0] * tool.scales[:, 1]) / 0.81  # per Gaussian
    spacing = float(np.sqrt(tool_area / density))
    radius = rng.uniform(0.55, 0.8) * length
    n = int(np.ceil(2 * radius / spacing))
    ij = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
    xy = (ij + 0.5 + rng.uniform(-0.4, 0.4, ij.shape)) * spacing - radius
    xy = xy[np.linalg.norm(xy, axis=1) <= radius] + rng.uniform(-0.1, 0.1, 2) * length
    count = xy.shape[0]
    means = np.column_stack([xy, rng.normal(0.0, 0.15 * spacing, count)])
    size = 0.9 * spacing * rng.lognormal(0.0, 0.15, (count, 2))
    scales = np.column_stack([size, 0.1 * size.min(axis=1)])
    yaw = rng.uniform(0, np.pi, count)
    quats = np.column_stack([np.cos(yaw), np.zeros(count), np.zeros(count), np.sin(yaw)])
    cloth = rng.choice([[0.25, 0.45, 0.32], [0.85, 0.85, 0.82], [0.2, 0.3, 0.55]])
    rgb = np.clip(cloth * rng.lognormal(0.0, 0.08, (count, 1)), 0.0, 1.0)
    return _Rows(means, quats, scales, np.clip(rng.beta(4.0, 1.0, count), 0.02, 0.995), rgb,
                 np.full(count, Label.FLOOR))


def _background(length: float, count: int, rng: np.random.Generator) -> _Rows:
    """The room: sparse large Gaussians 3 to 12 tool lengths away, in every direction."""
    direction = _unit(rng.normal(size=(count, 3)))
    distance = length * np.exp(rng.uniform(np.log(3.0), np.log(12.0), count))
    scales = 0.004 * distance[:, None] * rng.lognormal(0.0, 0.4, (count, 3))
    return _Rows(direction * distance[:, None], _unit(rng.normal(size=(count, 4))), scales,
                 rng.uniform(0.2, 1.0, count), rng.uniform(0.1, 0.9, (count, 3)),
                 np.full(count, Label.BACKGROUND))


def _floaters(tool: _Rows, length: float, count: int, rng: np.random.Generator) -> _Rows:
    """Faint Gaussians in free space near the tool, alone or in clumps of about 3: half
    start a few tool-Gaussian sizes off its surface, half anywhere in its box grown by a
    quarter length. In free space means not touching the tool: a floater's centre is
    farther from every tool centre than twice its own size plus the tool's (a floater
    overlapping the surface within 2 sigma would be part of it in every view)."""
    size = float(np.median(tool.scales.max(axis=1)))
    tree = cKDTree(tool.means)
    kept: list[np.ndarray] = []
    while sum(k.shape[0] for k in kept) < count:
        seeds = max(2, count // 3)
        near = rng.integers(0, tool.count, seeds // 2)
        centres = np.concatenate([
            tool.means[near] + _unit(rng.normal(size=(near.size, 3)))
            * (rng.uniform(3.0, 20.0, (near.size, 1)) * size),
            rng.uniform(tool.means.min(axis=0) - 0.25 * length,
                        tool.means.max(axis=0) + 0.25 * length, (seeds - near.size, 3))])
        clump = rng.integers(0, centres.shape[0], count)
        sizes = size * np.exp(rng.uniform(np.log(0.5), np.log(4.0), count))
        means = centres[clump] + rng.normal(0.0, 1.0, (count, 3)) * sizes[:, None]
        means[:, 2] = np.abs(means[:, 2])  # above the table
        clearance = tree.query(means)[0]
        free = clearance > 2.0 * sizes + size
        kept.append(np.column_stack([means, sizes])[free])
    rows = np.concatenate(kept)[:count]
    means, sizes = rows[:, :3], rows[:, 3]
    scales = sizes[:, None] * rng.uniform(0.4, 1.0, (count, 3))
    scales[:, 0] = sizes  # the largest standard deviation is the floater's size
    return _Rows(means, _unit(rng.normal(size=(count, 4))), scales,
                 rng.uniform(0.03, 0.6, count), rng.uniform(0.0, 1.0, (count, 3)),
                 np.full(count, Label.FLOATER))


def _halos(tool: _Rows, count: int, rng: np.random.Generator) -> _Rows:
    """Large faint Gaussians centred on the tool: 3-10x the size of the Gaussian under them."""
    anchor = rng.integers(0, tool.count, count)
    local = tool.scales[anchor].max(axis=1)
    means = tool.means[anchor] + rng.normal(0.0, 0.5, (count, 3)) * local[:, None]
    scales = (local * rng.uniform(3.0, 10.0, count))[:, None] * np.column_stack(
        [np.ones(count), rng.uniform(0.6, 1.0, count), rng.uniform(0.4, 1.0, count)])
    return _Rows(means, _unit(rng.normal(size=(count, 4))), scales,
                 rng.uniform(0.01, 0.15, count), tool.rgb[anchor],
                 np.full(count, Label.HALO))


# --- rotations --------------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly distributed ``[3, 3]`` rotation."""
    w, x, y, z = _unit(rng.normal(size=4))
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """wxyz of a ``[3, 3]`` rotation (Shepperd's method, largest pivot)."""
    m = np.array([1 + r[0, 0] + r[1, 1] + r[2, 2], 1 + r[0, 0] - r[1, 1] - r[2, 2],
                  1 - r[0, 0] + r[1, 1] - r[2, 2], 1 - r[0, 0] - r[1, 1] + r[2, 2]])
    k = int(np.argmax(m))
    s = 2.0 * np.sqrt(m[k])
    if k == 0:
        q = [s / 4, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif k == 1:
        q = [(r[2, 1] - r[1, 2]) / s, s / 4, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif k == 2:
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, s / 4, (r[1, 2] + r[2, 1]) / s]
    else:
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, s / 4]
    return np.asarray(q)


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (wxyz), broadcasting ``[4]`` against ``[N, 4]``."""
    aw, ax, ay, az = np.moveaxis(np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape)), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.broadcast_to(b, np.broadcast_shapes(a.shape, b.shape)), -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw], axis=-1)


# Global scales the held-out sweeps cycle through (capture units per metre).
SWEEP_SCALES = (1e-3, 1e-1, 1e1, 1e2)


def sweep_params(seed: int) -> dict:
    """Random :func:`make_capture` arguments for one capture of a sweep.

    The global scale cycles through :data:`SWEEP_SCALES` (times up to 10^+-0.5, so about
    3e-4 to 3e2 overall); every fourth capture has no table; half have sparse thin parts;
    the other arguments are drawn from ``default_rng(seed)``. The tests and
    ``scripts/eval_extract.py`` draw from disjoint seed ranges.
    """
    rng = np.random.default_rng(seed)
    return {
        "scale": float(SWEEP_SCALES[seed % 4] * 10 ** rng.uniform(-0.5, 0.5)),
        "tool_count": int(rng.choice([3000, 6000])),
        "floor": seed % 4 != 3,
        "floor_density": float(rng.choice([0.02, 0.05, 0.15, 0.5, 1.0])),
        "floater_share": float(rng.uniform(0.02, 0.15)),
        "halo_share": float(rng.uniform(0.03, 0.12)),
        "background_share": float(rng.uniform(0.1, 1.0)),
        "sparse_parts": seed % 2 == 0,
        "seed": seed,
    }


def extraction_figures(labels: np.ndarray, keep: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, share of halo rows kept) of a kept-row mask.

    Args:
        labels: ``[N]`` :class:`Label` values of a capture's rows.
        keep: ``[N]`` bool, the rows an extraction kept.
    """
    tool = labels == Label.TOOL
    halo = labels == Label.HALO
    hits = int((keep & tool).sum())
    halo_kept = float(keep[halo].mean()) if halo.any() else 0.0
    return hits / max(int(keep.sum()), 1), hits / int(tool.sum()), halo_kept
