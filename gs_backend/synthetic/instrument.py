"""A procedural stand-in for a captured splat of a needle driver.

Local frame (metres; the scenario's poses map it to world):

- The jaw tip is at the origin (where the two jaw tips meet when closed).
- The instrument's axis is +x, pointing from the tip towards the handle:
  jaws on ``0 <= x <= JAW_LENGTH_M``, hinged at ``x = JAW_LENGTH_M``; the wrist on
  ``[JAW_LENGTH_M, SHAFT_START_M]``; the shaft (``SHAFT_RADIUS_M``) on
  ``[SHAFT_START_M, SHAFT_START_M + SHAFT_LENGTH_M]``.
- The jaws open in the xz plane: the upper jaw towards +z, the lower towards -z.

The shaft is glossy black, the wrist and jaws are brushed steel with serrations
hinted on the gripping faces. SH degree 3 carries the view-dependent shine: lobes
around the mirror direction of two lights fixed in the instrument's frame (as a
capture under fixed lights bakes them) and a lobe around the surface normal (the
endoscope's own light, which is always next to the viewer), so highlights move
as the camera or the instrument turns.
"""

from __future__ import annotations

import numpy as np

from gs_backend.gaussians import Gaussians
from gs_backend.synthetic.surfels import (
    ParametricSurface,
    SurfaceSamples,
    lobe_sh,
    reflect,
    rgb_to_sh_dc,
    sample_parametric,
    smoothstep,
    surfel_gaussians,
)

JAW_LENGTH_M = 0.015
WRIST_LENGTH_M = 0.012
SHAFT_START_M = JAW_LENGTH_M + WRIST_LENGTH_M
SHAFT_LENGTH_M = 0.25
SHAFT_RADIUS_M = 0.004
WRIST_RADIUS_AT_HINGE_M = 0.0031
INSTRUMENT_SH_DEGREE = 3

_STEEL = np.array([0.36, 0.37, 0.39])
_STEEL_DARK = np.array([0.12, 0.12, 0.13])
_SHAFT_BLACK = np.array([0.06, 0.06, 0.07])
_COLLAR_LENGTH_M = 0.006  # steel collar where the black shaft meets the wrist
# Lights fixed in the instrument frame: unit direction from the surface to the light.
_KEY_LIGHT = np.array([-0.3, 0.45, 1.0]) / np.linalg.norm([-0.3, 0.45, 1.0])
_FILL_LIGHT = np.array([0.25, -0.9, -0.35]) / np.linalg.norm([0.25, -0.9, -0.35])

# Share of the Gaussians per part; small parts get a finer sampling, they are
# what the camera sees up close.
_SHARES = {"shaft": 0.56, "shaft_cap": 0.02, "wrist": 0.15, "wrist_cap": 0.03,
           "upper_jaw": 0.12, "lower_jaw": 0.12}


def make_needle_driver(
    count: int = 40_000, *, seed: int = 1, jaw_opening_deg: float = 12.0
) -> Gaussians:
    """A needle-driver-like instrument of about ``count`` Gaussians, SH degree 3.

    See the module docstring for the local frame (tip at the origin, axis +x).

    Args:
        count: approximate number of Gaussians.
        seed: random seed (jitter, surface noise); same seed, same asset.
        jaw_opening_deg: angle between the two jaws (0 = closed).
    """
    rng = np.random.default_rng(seed)
    half_open = np.radians(jaw_opening_deg) / 2
    parts: list[tuple[str, SurfaceSamples, np.ndarray]] = []
    for name, surface, periodic in [
        ("shaft", _tube(SHAFT_START_M, SHAFT_START_M + SHAFT_LENGTH_M,
                        SHAFT_RADIUS_M, SHAFT_RADIUS_M), True),
        ("shaft_cap", _disk(SHAFT_START_M + SHAFT_LENGTH_M, SHAFT_RADIUS_M, +1), True),
        ("wrist", _tube(JAW_LENGTH_M, SHAFT_START_M, WRIST_RADIUS_AT_HINGE_M,
                        SHAFT_RADIUS_M), True),
        ("wrist_cap", _disk(JAW_LENGTH_M, WRIST_RADIUS_AT_HINGE_M, -1), True),
        ("upper_jaw", _jaw(+1, half_open), True),
        ("lower_jaw", _jaw(-1, half_open), True),
    ]:
        n = max(16, round(count * _SHARES[name]))
        samples = sample_parametric(surface, n, rng, periodic_v=periodic)
        parts.append((name, samples, _albedo(name, samples, rng)))

    samples = SurfaceSamples.concat([p[1] for p in parts])
    albedo = np.concatenate([p[2] for p in parts])
    plastic = np.concatenate([np.full(p[1].count, p[0] in ("shaft", "shaft_cap"))
                              for p in parts])
    metal = ~plastic | (samples.points[:, 0] < SHAFT_START_M + _COLLAR_LENGTH_M)
    sh = _shiny_sh(samples.normals, albedo, metal)
    opacities = rng.uniform(0.93, 0.99, samples.count)
    return surfel_gaussians(samples, sh, opacities, overlap=0.9, flatness=0.15)


def _shiny_sh(normals: np.ndarray, albedo: np.ndarray, metal: np.ndarray) -> np.ndarray:
    """SH ``[N, 16, 3]``: albedo in the DC term plus specular lobes (3DGS basis).

    Args:
        normals: ``[N, 3]`` unit outward normals (local frame).
        albedo: ``[N, 3]`` base colour.
        metal: ``[N]`` bool, steel (strong, neutral shine) or black plastic (weaker).

    A light at unit direction ``l`` is mirrored towards ``r = 2 (n.l) n - l``; a viewer on
    that ray looks along ``d = -r`` (camera -> surface), which is the lobe's axis.
    """
    n = normals
    metal_gain = np.where(metal, 1.0, 0.45)[:, None]
    tint = np.where(metal[:, None], np.array([0.95, 0.97, 1.0]), np.array([0.9, 0.92, 1.0]))
    sh = np.zeros((n.shape[0], 16, 3))
    for light, strength, sharpness in [(_KEY_LIGHT, 0.55, 14.0), (_FILL_LIGHT, 0.25, 10.0)]:
        l = np.broadcast_to(light, n.shape)
        facing = smoothstep(0.0, 0.3, np.sum(n * l, axis=1))[:, None]  # lit side only
        mirror_view = reflect(-l, n)  # direction from surface to the viewer that sees it
        sh += lobe_sh(-mirror_view, strength * facing * metal_gain * tint,
                      sharpness=sharpness, degree=INSTRUMENT_SH_DEGREE)
    # The endoscope's light sits by the lens: a highlight where the surface faces the viewer.
    sh += lobe_sh(-n, 0.22 * metal_gain * tint, sharpness=10.0, degree=INSTRUMENT_SH_DEGREE)
    sh[:, 0, :] += rgb_to_sh_dc(albedo)
    return sh


def _albedo(part: str, samples: SurfaceSamples, rng: np.random.Generator) -> np.ndarray:
    """``[N, 3]`` base colour of one part, with brushed-metal / plastic noise."""
    n = samples.count
    x = samples.points[:, 0]
    if part in ("shaft", "shaft_cap"):
        rgb = np.broadcast_to(_SHAFT_BLACK, (n, 3)).copy()
        # A brushed-steel collar where the shaft meets the wrist.
        collar = (x < SHAFT_START_M + _COLLAR_LENGTH_M)[:, None]
        rgb = np.where(collar, _STEEL * 0.9, rgb)
    elif part in ("wrist", "wrist_cap"):
        rgb = np.broadcast_to(_STEEL, (n, 3)).copy()
        groove = np.abs(x - (JAW_LENGTH_M + 0.55 * WRIST_LENGTH_M)) < 0.0006
        pin = np.abs(x - (JAW_LENGTH_M + 0.2 * WRIST_LENGTH_M)) < 0.0012
        pin &= np.abs(samples.points[:, 1]) > 0.8 * WRIST_RADIUS_AT_HINGE_M
        rgb[groove | pin] = _STEEL_DARK
    else:
        rgb = np.broadcast_to(_STEEL, (n, 3)).copy()
        # Serrations on the gripping face (v near 0.75 on the upper jaw, mirrored to
        # 0.25 on the lower one, see _jaw), striped across the jaw.
        grip_v = 0.75 if part == "upper_jaw" else 0.25
        grip = np.abs(samples.uv[:, 1] - grip_v) < 0.2
        ridge = np.sin(2 * np.pi * samples.uv[:, 0] * JAW_LENGTH_M / 0.0007) > 0.0
        rgb[grip & ridge] = _STEEL_DARK
        rgb[grip & ~ridge] = _STEEL * 1.15
    rgb *= 1.0 + rng.normal(0.0, 0.05, (n, 1))  # brushed / moulded texture
    return np.clip(rgb, 0.0, 1.0)


def _tube(x0: float, x1: float, r0: float, r1: float) -> ParametricSurface:
    """Truncated cone along +x from ``x0`` (radius ``r0``) to ``x1`` (``r1``), outward normals."""

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        phi = 2 * np.pi * v
        r = r0 + (r1 - r0) * u
        c, s = np.cos(phi), np.sin(phi)
        points = np.stack([x0 + (x1 - x0) * u, r * c, r * s], axis=1)
        d_du = np.stack([np.full_like(u, x1 - x0), (r1 - r0) * c, (r1 - r0) * s], axis=1)
        # v runs clockwise seen from +x so that d/du x d/dv points outwards.
        d_dv = 2 * np.pi * r[:, None] * np.stack([np.zeros_like(u), s, -c], axis=1)
        return points, d_du, d_dv

    return surface


def _disk(x: float, radius: float, facing: float) -> ParametricSurface:
    """Disk at ``x`` of the given radius, normal ``facing * +x``."""

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        phi = 2 * np.pi * v * facing
        r = radius * np.sqrt(np.maximum(u, 1e-4))  # even area per grid row
        c, s = np.cos(phi), np.sin(phi)
        points = np.stack([np.full_like(u, x), r * c, r * s], axis=1)
        dr_du = radius * 0.5 / np.sqrt(np.maximum(u, 1e-4))
        d_du = dr_du[:, None] * np.stack([np.zeros_like(u), c, s], axis=1)
        d_dv = 2 * np.pi * facing * r[:, None] * np.stack([np.zeros_like(u), -s, c], axis=1)
        return points, d_du, d_dv

    return surface


def _jaw(side: float, half_open_rad: float) -> ParametricSurface:
    """One jaw: a tapered, rounded-nose bar from the hinge (u = 0) to the tip (u = 1).

    Cross-section: a half-ellipse of half-width w(u) (along y) and height 1.3 t(u) on
    the outer side, with a flat gripping face (v in (0.5, 1), centred on v = 0.75)
    lying in the closing plane z = 0 on the ``side`` (+1 upper, -1 lower) of it.
    The lower jaw is the mirror image of the upper one (with v reversed, so normals
    still point outwards). Then rotated about the hinge axis (y through x = JAW_LENGTH_M).
    """
    angle = side * half_open_rad
    ca, sa = np.cos(angle), np.sin(angle)
    rot = np.array([[ca, 0.0, sa], [0.0, 1.0, 0.0], [-sa, 0.0, ca]])  # about y
    hinge = np.array([JAW_LENGTH_M, 0.0, 0.0])
    eps = 1e-5

    def section(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        nose = np.sqrt(np.clip(1.0 - ((u - 0.8) / 0.2).clip(0.0) ** 2, 0.0, 1.0))
        width = (0.0021 + (0.0011 - 0.0021) * u) * np.maximum(nose, 0.02)
        thick = (0.0011 + (0.0006 - 0.0011) * u) * np.maximum(nose, 0.02)
        phi = 2 * np.pi * v
        c, s = np.cos(phi), np.sin(phi)
        y = width * c
        z = thick * np.where(s > 0, 0.3 + s, 0.3 * (1.0 + s))
        local = np.stack([JAW_LENGTH_M * (1.0 - u), y, side * z], axis=1)
        return (local - hinge) @ rot.T + hinge

    def surface(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Finite differences: the superellipse is awkward to differentiate by hand.
        vv = v if side > 0 else 1.0 - v  # keep d/du x d/dv outwards on the mirrored jaw
        points = section(u, vv)
        d_du = (section(u + eps, vv) - section(u - eps, vv)) / (2 * eps)
        d_dv = (section(u, v + eps if side > 0 else vv - eps)
                - section(u, v - eps if side > 0 else vv + eps)) / (2 * eps)
        return points, d_du, d_dv

    return surface
