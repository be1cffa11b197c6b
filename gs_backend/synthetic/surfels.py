"""Surface-aligned ("surfel") Gaussians and view-dependent SH lobes.

The synthetic assets are built the way a trained splat of a real object looks:
flat Gaussians lying in the surface, each oriented by its local surface frame,
with a colour whose view dependence is held in the SH coefficients.

Everything here is numpy (float64) and converted to a :class:`Gaussians` at the end.
SH coefficients use the 3DGS real basis (:func:`gs_backend.sh.sh_basis`):
``colour(d) = sum_k sh[k] * B_k(d)`` with ``d`` the unit direction from the camera
centre to the Gaussian.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch

from gs_backend.gaussians import SH_C0, Gaussians
from gs_backend.posing import rotation_matrix_to_quat
from gs_backend.sh import sh_basis

# Parametric surface: (u, v) in [0, 1]^2, arrays [N] -> (points, d/du, d/dv), each [N, 3].
ParametricSurface = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SurfaceSamples:
    """Points on a surface with their local frame and footprint (metres).

    Attributes:
        points: ``[N, 3]`` positions.
        normals: ``[N, 3]`` unit outward normals.
        tangents: ``[N, 3]`` unit first tangent (orthogonal to the normal).
        spacing_u: ``[N]`` sample spacing along ``tangents``.
        spacing_v: ``[N]`` sample spacing along ``normals x tangents``.
        uv: ``[N, 2]`` surface parameters of each sample.
    """

    points: np.ndarray
    normals: np.ndarray
    tangents: np.ndarray
    spacing_u: np.ndarray
    spacing_v: np.ndarray
    uv: np.ndarray

    @property
    def count(self) -> int:
        return int(self.points.shape[0])

    @staticmethod
    def concat(parts: list[SurfaceSamples]) -> SurfaceSamples:
        names = [f.name for f in fields(SurfaceSamples)]
        return SurfaceSamples(**{n: np.concatenate([getattr(p, n) for p in parts])
                                 for n in names})


def grid_shape(count: int, aspect: float) -> tuple[int, int]:
    """``(n_u, n_v)`` with ``n_u * n_v ~= count`` and ``n_u / n_v ~= aspect``."""
    n_v = max(2, round(float(np.sqrt(count / max(aspect, 1e-9)))))
    n_u = max(2, round(count / n_v))
    return n_u, n_v


def sample_parametric(
    surface: ParametricSurface,
    count: int,
    rng: np.random.Generator,
    *,
    jitter: float = 0.8,
    periodic_v: bool = False,
) -> SurfaceSamples:
    """Place about ``count`` samples on a parametric surface, on a jittered (u, v) grid.

    The grid's aspect ratio follows the surface's mean extent along u and v, so
    samples are roughly evenly spaced in metres; each sample's spacing is measured
    from the local derivatives, so stretched regions get larger Gaussians and the
    surface stays closed.

    Args:
        surface: maps ``u, v`` (``[N]`` each, in [0, 1]) to points, d/du, d/dv (``[N, 3]``).
        count: approximate number of samples.
        rng: random source for the jitter.
        jitter: jitter amplitude as a fraction of a grid cell (0 = regular grid).
        periodic_v: the surface wraps around in v (cylinders): no duplicate seam row.
    """
    probe_u, probe_v = np.meshgrid(np.linspace(0, 1, 9), np.linspace(0, 1, 9), indexing="ij")
    _, pu, pv = surface(probe_u.ravel(), probe_v.ravel())
    len_u = float(np.linalg.norm(pu, axis=1).mean())
    len_v = float(np.linalg.norm(pv, axis=1).mean())
    n_u, n_v = grid_shape(count, len_u / max(len_v, 1e-12))
    iu, iv = np.meshgrid(np.arange(n_u), np.arange(n_v), indexing="ij")
    iu, iv = iu.ravel().astype(np.float64), iv.ravel().astype(np.float64)
    ju = (rng.random(iu.shape) - 0.5) * jitter
    jv = (rng.random(iv.shape) - 0.5) * jitter
    u = np.clip((iu + 0.5 + ju) / n_u, 0.0, 1.0)
    if periodic_v:
        v = ((iv + 0.5 + jv) / n_v) % 1.0
    else:
        v = np.clip((iv + 0.5 + jv) / n_v, 0.0, 1.0)
    points, pu, pv = surface(u, v)
    du = np.linalg.norm(pu, axis=1) / n_u
    dv = np.linalg.norm(pv, axis=1) / n_v
    normals = _normalize(np.cross(pu, pv))
    tangents = _normalize(pu - normals * np.sum(pu * normals, axis=1, keepdims=True))
    return SurfaceSamples(points, normals, tangents, du, dv, np.stack([u, v], axis=1))


def surfel_gaussians(
    samples: SurfaceSamples,
    sh: np.ndarray,  # [N, K, 3]
    opacities: np.ndarray,  # [N]
    *,
    overlap: float = 0.9,
    flatness: float = 0.12,
) -> Gaussians:
    """Flat Gaussians lying in the surface, one per sample.

    Args:
        samples: the surface samples and their frames.
        sh: SH coefficients per sample (3DGS basis).
        opacities: in (0, 1).
        overlap: tangential standard deviation as a fraction of the sample spacing;
            about 0.9 leaves no see-through gaps; smaller looks sharper but lets the
            background through between samples.
        flatness: normal standard deviation as a fraction of the smaller tangential one.
    """
    bitangents = np.cross(samples.normals, samples.tangents)
    rotations = np.stack([samples.tangents, bitangents, samples.normals], axis=2)  # columns
    s_u = overlap * samples.spacing_u
    s_v = overlap * samples.spacing_v
    s_n = flatness * np.minimum(s_u, s_v)
    scales = np.stack([s_u, s_v, s_n], axis=1)
    return Gaussians(
        means=torch.from_numpy(samples.points).float(),
        quats=rotation_matrix_to_quat(torch.from_numpy(rotations)).float(),
        scales=torch.from_numpy(scales).float(),
        opacities=torch.from_numpy(np.clip(opacities, 1e-4, 1 - 1e-4)).float(),
        sh=torch.from_numpy(sh).float(),
    )


def rgb_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """DC coefficient ``[N, 3]`` that renders as ``rgb`` from every direction."""
    return (rgb - 0.5) / SH_C0


def lobe_band_weights(sharpness: float, degree: int) -> np.ndarray:
    """Per-band weights ``g_l`` (``[degree+1]``) of the lobe ``exp(sharpness * (cos - 1))``.

    By the addition theorem, the band-limited lobe around axis ``a`` is
    ``f(d) = sum_l g_l sum_m B_lm(a) B_lm(d)`` with ``g_l = 2 pi int f(t) P_l(t) dt``.
    The weights are tapered (Hann window over the bands) so the truncated lobe does
    not ring into dark or coloured fringes.
    """
    t, w = np.polynomial.legendre.leggauss(64)
    f = np.exp(sharpness * (t - 1.0))
    weights = np.empty(degree + 1)
    for l in range(degree + 1):
        p_l = np.polynomial.legendre.Legendre.basis(l)(t)
        taper = 0.5 * (1.0 + np.cos(np.pi * l / (degree + 1)))
        weights[l] = 2.0 * np.pi * np.sum(w * f * p_l) * taper
    return weights


def lobe_sh(
    axes: np.ndarray,  # [N, 3]
    rgb: np.ndarray,  # [N, 3] or [3]
    *,
    sharpness: float,
    degree: int,
) -> np.ndarray:
    """SH coefficients ``[N, (degree+1)^2, 3]`` of a colour lobe peaking when the viewing
    direction (camera -> Gaussian) equals ``axes``.

    The lobe's peak value is normalised to ``rgb`` (after band limiting and tapering),
    so ``rgb`` is the brightness added at the centre of the highlight.
    """
    g = lobe_band_weights(sharpness, degree)
    peak = float(np.sum(g * (2 * np.arange(degree + 1) + 1) / (4 * np.pi)))  # P_l(1) = 1
    per_band = np.repeat(g, 2 * np.arange(degree + 1) + 1) / peak  # [K]
    coeffs = sh_basis(degree, torch.from_numpy(_normalize(axes))).numpy() * per_band  # [N, K]
    return coeffs[:, :, None] * np.broadcast_to(rgb, (axes.shape[0], 3))[:, None, :]


def reflect(directions: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Mirror ``directions`` ``[N, 3]`` about planes with unit ``normals`` ``[N, 3]``."""
    return directions - 2.0 * np.sum(directions * normals, axis=1, keepdims=True) * normals


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
