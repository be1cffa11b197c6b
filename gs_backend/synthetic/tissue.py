"""A procedural stand-in for a captured splat of abdominal tissue.

The surface is a height field ``z = h(x, y)`` (metres, z up, centred at the origin):
a shallow bowl (the cavity wall rising at the edges), smooth folds, small bumps,
and slightly raised vessels. Colour mixes pink/red tissue with yellowish fat and
dark branching vessels; a small degree-1 SH term adds a wet sheen that brightens
the surface where it faces the viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from gs_backend.gaussians import Gaussians
from gs_backend.synthetic.surfels import (
    lobe_sh,
    rgb_to_sh_dc,
    sample_parametric,
    smoothstep,
    surfel_gaussians,
)

TISSUE_RED = np.array([0.70, 0.27, 0.25])
TISSUE_PINK = np.array([0.84, 0.46, 0.42])
FAT_YELLOW = np.array([0.93, 0.76, 0.42])
ARTERY_RED = np.array([0.42, 0.05, 0.07])
VEIN_PURPLE = np.array([0.36, 0.10, 0.20])


@dataclass(frozen=True)
class _Waves:
    """A random sum of plane waves ``sum_k a_k sin(w_k . p + phi_k)`` over the xy plane."""

    amplitudes: np.ndarray  # [K]
    wavevectors: np.ndarray  # [K, 2], radians per metre
    phases: np.ndarray  # [K]

    @staticmethod
    def random(rng: np.random.Generator, count: int, wavelength_m: tuple[float, float],
               amplitude: float) -> _Waves:
        lam = np.exp(rng.uniform(np.log(wavelength_m[0]), np.log(wavelength_m[1]), count))
        angle = rng.uniform(0, 2 * np.pi, count)
        k = (2 * np.pi / lam)[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        amps = amplitude * (lam / wavelength_m[1]) / np.sqrt(count)  # longer waves, larger
        return _Waves(amps, k, rng.uniform(0, 2 * np.pi, count))

    def value(self, xy: np.ndarray) -> np.ndarray:
        return np.sin(xy @ self.wavevectors.T + self.phases) @ self.amplitudes

    def gradient(self, xy: np.ndarray) -> np.ndarray:
        c = np.cos(xy @ self.wavevectors.T + self.phases) * self.amplitudes  # [N, K]
        return c @ self.wavevectors  # [N, 2]

    def laplacian(self, xy: np.ndarray) -> np.ndarray:
        k2 = np.sum(self.wavevectors**2, axis=1)
        return -np.sin(xy @ self.wavevectors.T + self.phases) @ (self.amplitudes * k2)


@dataclass(frozen=True)
class _Vessels:
    """Branching vessel centre-lines as segments with a radius each (metres)."""

    starts: np.ndarray  # [S, 2]
    ends: np.ndarray  # [S, 2]
    radii: np.ndarray  # [S]
    is_vein: np.ndarray  # [S] bool

    @staticmethod
    def grow(rng: np.random.Generator, size_m: float, trunks: int = 5) -> _Vessels:
        starts, ends, radii, veins = [], [], [], []
        step = size_m / 80
        stack = []
        for i in range(trunks):
            # Trunks enter from the rim and cross the patch off-centre.
            angle = 2 * np.pi * (i + rng.uniform(0.2, 0.8)) / trunks
            origin = 0.6 * size_m * np.array([np.cos(angle), np.sin(angle)])
            heading = angle + np.pi + rng.uniform(0.35, 0.8) * rng.choice([-1.0, 1.0])
            stack.append((origin, heading, size_m * rng.uniform(0.005, 0.008), 0, i % 3 == 2))
        while stack:
            pos, heading, radius, depth, vein = stack.pop()
            for _ in range(int(rng.integers(30, 70) if depth == 0 else rng.integers(8, 24))):
                heading += rng.normal(0, 0.18)
                nxt = pos + step * np.array([np.cos(heading), np.sin(heading)])
                starts.append(pos)
                ends.append(nxt)
                radii.append(radius)
                veins.append(vein)
                pos = nxt
                radius *= 0.99
                if np.abs(pos).max() > 0.62 * size_m:
                    break
                if depth < 2 and rng.random() < 0.07:
                    side = rng.choice([-1.0, 1.0])
                    stack.append((pos.copy(), heading + side * rng.uniform(0.5, 1.1),
                                  radius * 0.65, depth + 1, vein))
        return _Vessels(np.array(starts), np.array(ends), np.array(radii), np.array(veins))

    def weights(self, xy: np.ndarray, size_m: float,
                texel_m: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
        """Per point ``xy`` (``[N, 2]``): vessel coverage in [0, 1] and whether it is a vein.

        The vessels are drawn once into a texture covering the patch (``texel_m`` per
        texel, anti-aliased lines, softened edges) and looked up bilinearly.
        """
        res = int(np.ceil(size_m / texel_m)) + 1
        shift = 4  # cv2 fixed-point: coordinates in 1/16 texel

        def to_texel(p: np.ndarray) -> np.ndarray:
            return np.round((p / size_m + 0.5) * (res - 1) * (1 << shift)).astype(np.int32)

        layers = []
        for vein in (False, True):
            img = np.zeros((res, res), np.float32)
            for a, b, r in zip(to_texel(self.starts[self.is_vein == vein]),
                               to_texel(self.ends[self.is_vein == vein]),
                               self.radii[self.is_vein == vein], strict=True):
                width = max(1, round(2 * r / texel_m))
                cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), 1.0,
                         width, cv2.LINE_AA, shift)
            layers.append(cv2.GaussianBlur(img, (0, 0), 2.0))
        tex_xy = (xy / size_m + 0.5) * (res - 1)
        artery = _bilinear(layers[0], tex_xy)
        vein = _bilinear(layers[1], tex_xy)
        return np.clip(np.maximum(artery, vein), 0.0, 1.0), vein > artery


def _bilinear(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample ``img`` ``[H, W]`` at texel coordinates ``xy`` ``[N, 2]`` (x = column)."""
    x = np.clip(xy[:, 0], 0, img.shape[1] - 1.001)
    y = np.clip(xy[:, 1], 0, img.shape[0] - 1.001)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bottom = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def make_tissue(count: int = 150_000, *, seed: int = 0, size_m: float = 0.20) -> Gaussians:
    """A tissue-like surface of about ``count`` flat Gaussians.

    Frame: metres, z up, the surface spans ``[-size_m/2, size_m/2]^2`` in x and y and
    lies around z = 0 (folds of a few millimetres; the rim rises by about
    ``0.18 * size_m`` at the edges' midpoints, like a cavity wall). SH degree 1.

    Args:
        count: approximate number of Gaussians (the exact count is ``n_u * n_v`` of the
            sampling grid).
        seed: random seed; the same seed gives the same asset.
        size_m: edge length of the square patch in metres.
    """
    rng = np.random.default_rng(seed)
    folds = _Waves.random(rng, 10, (0.25 * size_m, 1.2 * size_m), 0.05 * size_m)
    bumps = _Waves.random(rng, 40, (0.025 * size_m, 0.12 * size_m), 0.005 * size_m)
    vessels = _Vessels.grow(rng, size_m)
    bowl = 0.18 * size_m / (0.5 * size_m) ** 4  # rim height / edge distance^4

    def height_and_gradient(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r2 = np.sum(xy * xy, axis=1, keepdims=True)
        h = folds.value(xy) + bumps.value(xy) + bowl * r2[:, 0] ** 2
        grad = folds.gradient(xy) + bumps.gradient(xy) + bowl * 4 * r2 * xy
        return h, grad

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xy = np.stack([u - 0.5, v - 0.5], axis=1) * size_m
        h, grad = height_and_gradient(xy)
        one, zero = np.ones_like(u), np.zeros_like(u)
        points = np.stack([xy[:, 0], xy[:, 1], h], axis=1)
        d_du = size_m * np.stack([one, zero, grad[:, 0]], axis=1)
        d_dv = size_m * np.stack([zero, one, grad[:, 1]], axis=1)
        return points, d_du, d_dv

    samples = sample_parametric(surface, count, rng)
    xy = samples.points[:, :2]
    cover, vein = vessels.weights(xy, size_m)
    # Vessels stand slightly proud of the surface.
    points = samples.points.copy()
    points[:, 2] += 0.0015 * size_m * cover
    samples = replace(samples, points=points)

    rgb = _tissue_colour(rng, xy, size_m, cover, vein)
    curvature = folds.laplacian(xy) + bumps.laplacian(xy)
    rgb = np.clip(rgb * _baked_shading(samples.normals, curvature, xy, size_m)[:, None], 0, 1)
    sheen_axes = -samples.normals  # brightest when seen face-on (camera -> surface = -n)
    sh = lobe_sh(sheen_axes, np.array([0.10, 0.09, 0.09]), sharpness=3.0, degree=1)
    sh[:, 0, :] = rgb_to_sh_dc(rgb)  # the sheen only shifts brightness with the view angle
    opacities = np.where(rng.random(samples.count) < 0.9,
                         rng.uniform(0.9, 0.99, samples.count),
                         rng.uniform(0.6, 0.9, samples.count))
    return surfel_gaussians(samples, sh, opacities, overlap=0.9)


def _baked_shading(normals: np.ndarray, curvature: np.ndarray, xy: np.ndarray,
                   size_m: float) -> np.ndarray:
    """``[N]`` brightness factor baked into the albedo, as a capture bakes its lighting:
    diffuse light from above the patch, darker creases, dimmer rim (further from the light).

    ``curvature`` is the Laplacian of the height field (1/m), positive in valleys.
    """
    light = np.array([0.0, -0.45, 0.89])
    diffuse = 0.45 + 0.55 * np.clip(normals @ light, 0.0, 1.0)
    crease = 1.0 - 0.1 * np.tanh(curvature * size_m / 60.0)  # valleys: curvature > 0
    r = np.linalg.norm(xy, axis=1)
    falloff = 1.0 - 0.4 * smoothstep(0.3 * size_m, 0.6 * size_m, r)
    return diffuse * crease * falloff


def _tissue_colour(rng: np.random.Generator, xy: np.ndarray, size_m: float,
                   vessel_cover: np.ndarray, is_vein: np.ndarray) -> np.ndarray:
    """``[N, 3]`` albedo: red/pink mottling, yellow fat patches, dark vessels."""
    mottle = _Waves.random(rng, 24, (0.03 * size_m, 0.3 * size_m), 1.0)
    fat = _Waves.random(rng, 16, (0.08 * size_m, 0.5 * size_m), 1.0)
    lobules = _Waves.random(rng, 30, (0.01 * size_m, 0.04 * size_m), 1.0)
    m = smoothstep(-0.6, 0.6, mottle.value(xy))[:, None]
    rgb = (1 - m) * TISSUE_RED + m * TISSUE_PINK
    f = 0.9 * smoothstep(0.28, 0.5, fat.value(xy) + 0.12 * lobules.value(xy))[:, None]
    rgb = (1 - f) * rgb + f * FAT_YELLOW * (1.0 + 0.08 * lobules.value(xy))[:, None]
    rgb = rgb * (1.0 + rng.normal(0, 0.04, (xy.shape[0], 1)))  # fine speckle
    vessel_rgb = np.where(is_vein[:, None], VEIN_PURPLE, ARTERY_RED)
    c = (0.85 * vessel_cover)[:, None]
    rgb = (1 - c) * rgb + c * vessel_rgb
    return np.clip(rgb, 0.0, 1.0)
