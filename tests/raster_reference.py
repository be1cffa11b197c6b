"""Brute-force reference rasterizer: the test oracle for gs_backend.raster.

Projection is gsplat's own pure-torch twin of its CUDA projection
(``gsplat.cuda._torch_impl._fully_fused_projection``, with covariances from
``_quat_scale_to_covar_preci``); compositing is the per-pixel loop of gsplat's
``rasterize_to_pixels_3dgs_fwd`` kernel written out straightforwardly: every
Gaussian against every pixel (no tiles, no bounding boxes), one Gaussian at a
time in depth order, vectorised over pixels only.

Why this is a valid oracle although ``_fully_fused_projection`` differs from
gsplat's CUDA projection (and from ours) in three culling details:

* it bounds every Gaussian by 3.33 standard deviations, without the
  opacity-aware shrink to ``sqrt(2 ln(255 o))``;
* it has no ``opacity < 1/255`` cull;
* its off-image cull uses that larger box.

None of them decides a pixel's value here, because the reference never uses the
box except to drop Gaussians whose 3.33-sigma box misses the image, and the per-
pixel alpha test does the rest: ``alpha = o exp(-sigma) >= 1/255`` holds exactly
inside the ellipse ``sigma <= ln(255 o) = extend^2 / 2``, whose bounding box is
the opacity-aware box (before ceil). So a Gaussian the CUDA projection culls for
low opacity (``o < 1/255``: alpha < 1/255 everywhere) or for its opacity-aware
box missing the image (alpha < 1/255 on every pixel) is skipped at every pixel
by the reference too; the 3.33-sigma box contains the opacity-aware one, so the
reference never drops a Gaussian the CUDA path keeps; and tiles are only a
superset of the box (the torch path also drops box tiles whose pixels the alpha
>= 1/255 ellipse misses: same argument). The outcomes can differ only where
float rounding puts a pixel's alpha within an ulp of 1/255 (or a transmittance
within an ulp of 1e-4): measure-zero events in exact arithmetic, but not
negligible in float32. Such a pixel can legitimately differ by a whole skipped
Gaussian (up to 1/255 of a colour) or by the Gaussian the stop rule drops. So
the reference also returns an ``ambiguous`` mask: the pixels where some decision
was within a generous bound of rounding noise, ``|sigma - ln(255 o)| <= tol``
for the skip test (``tol``: the sigma gradient times a centre displacement of
``noise`` pixels plus a few ulps, and ``noise`` relative) and, for the stop
test, ``|ln(T (1 - alpha) / 1e-4)|`` within the log-transmittance uncertainty
accumulated so far. Tests compare everywhere else and check that the ambiguous
pixels are few (well under 1 %).

Two more differences, both on measure-zero boundaries: this projection keeps
``near < z < far`` where CUDA keeps ``near <= z <= far``, and it clamps the
determinant instead of culling ``det <= 0`` (never reached with ``eps2d > 0``).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci
from torch import Tensor


def _f32(value: float) -> float:
    """The float32 constant gsplat's kernels use (``1.f / 255.f`` etc.), as a Python float."""
    return float(torch.tensor(value, dtype=torch.float32))


ALPHA_THRESHOLD = _f32(1.0 / 255.0)
MAX_ALPHA = _f32(0.999)
TRANSMITTANCE_STOP = _f32(1e-4)
CENTRE_NOISE_REL = 1e-6
"""Float32 rounding may move a projected centre by a few ulps: this fraction of its
distance from the image origin (on top of the absolute ``noise`` in pixels)."""
TORCH_NOISE = 1e-5
"""Default rounding-noise bound: the torch rasterizer agrees with float64 to ~1e-6."""


class ReferenceImage(NamedTuple):
    colors: Tensor  # [H, W, D] with background
    alphas: Tensor  # [H, W]
    depth: Tensor  # [H, W] expected depth
    ambiguous: Tensor  # [H, W] bool: a skip/stop decision lies within rounding noise


def reference_rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor | None = None,  # [D]
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    antialiased: bool = False,
    dtype: torch.dtype = torch.float64,
    noise: float = TORCH_NOISE,
) -> ReferenceImage:
    """Render one view pixel by pixel on the CPU, computing in ``dtype``.

    float64 (the default) makes the oracle gsplat's semantics in all but exact
    arithmetic. In float32 its formulas lose digits to cancellation: the
    world-to-camera step for Gaussians near the camera but far from the origin
    (up to ~1e-3 px), ``R S S^T R^T`` and ``a c - b^2`` for thin Gaussians seen
    end-on, the expanded quadratic form far along a needle (up to ~1e-4
    relative). In float64 that noise is gone and what remains is the float32
    noise of the implementation under test. ``dtype=torch.float32`` emulates
    gsplat's own float32 arithmetic instead. Results are returned as float32.

    ``noise`` bounds the rounding noise of the implementation compared against
    (pixels for centres, relative for sigma and opacity) and sets how wide the
    ``ambiguous`` band around each decision is.
    """
    means, quats, scales, opacities, colors, viewmat, K = (
        t.detach().to("cpu", dtype)
        for t in (means, quats, scales, opacities, colors, viewmat, K)
    )
    if background is not None:
        background = background.detach().to("cpu", dtype)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True,
                                           compute_preci=False)
    radii, means2d, depths, conics, compensations = _fully_fused_projection(
        means, covars, viewmat[None], K[None], width, height, eps2d=eps2d,
        near_plane=near, far_plane=far, calc_compensations=antialiased,
    )
    valid = (radii[0] > 0).all(dim=-1)
    opac = opacities * compensations[0] if antialiased else opacities
    ids = torch.nonzero(valid).squeeze(1)
    ids = ids[torch.sort(depths[0, ids], stable=True).indices]  # front to back

    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px = xs.reshape(-1).to(dtype) + 0.5
    py = ys.reshape(-1).to(dtype) + 0.5
    n_pix = px.shape[0]
    trans = torch.ones(n_pix, dtype=dtype)
    accum = torch.zeros(n_pix, colors.shape[1], dtype=dtype)
    accum_depth = torch.zeros(n_pix, dtype=dtype)
    done = torch.zeros(n_pix, dtype=torch.bool)
    ambiguous = torch.zeros(n_pix, dtype=torch.bool)
    log_trans_noise = torch.zeros(n_pix, dtype=torch.float64)
    for g in ids.tolist():
        mx, my = means2d[0, g]
        a, b, c = conics[0, g]
        dx = mx - px
        dy = my - py
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp(opac[g] * torch.exp(-sigma), max=MAX_ALPHA)
        skip = (sigma < 0) | (alpha < ALPHA_THRESHOLD) | done
        next_trans = trans * (1.0 - alpha)
        stop = ~skip & (next_trans <= TRANSMITTANCE_STOP)

        # How far each decision is from flipping, against the rounding noise.
        gradient = torch.hypot(a * dx + b * dy, b * dx + c * dy).double()
        centre_noise = noise + CENTRE_NOISE_REL * float(max(abs(mx), abs(my)))
        sigma_noise = gradient * centre_noise + (sigma.double().abs() + 1.0) * noise
        level = torch.log(opac[g].double() / ALPHA_THRESHOLD)
        near_skip = (sigma.double() - level).abs() <= sigma_noise
        unclamped = opac[g] * torch.exp(-sigma) < MAX_ALPHA
        step_noise = torch.where(
            unclamped, alpha.double() / (1.0 - alpha.double()) * sigma_noise, 0.0)
        stop_margin = (torch.log(next_trans.double()) - math.log(TRANSMITTANCE_STOP)).abs()
        near_stop = ~skip & (stop_margin <= log_trans_noise + step_noise + noise)
        ambiguous |= ~done & (near_skip | near_stop)

        done |= stop
        use = ~skip & ~stop
        weight = torch.where(use, alpha * trans, 0.0)
        accum += weight[:, None] * colors[g]
        accum_depth += weight * depths[0, g]
        trans = torch.where(use, next_trans, trans)
        log_trans_noise += torch.where(use, step_noise, 0.0)

    if background is not None:
        accum = accum + trans[:, None] * background
    alphas = 1.0 - trans
    depth = accum_depth / alphas.clamp(min=1e-10)
    return ReferenceImage(
        colors=accum.reshape(height, width, -1).float(),
        alphas=alphas.reshape(height, width).float(),
        depth=depth.reshape(height, width).float(),
        ambiguous=ambiguous.reshape(height, width),
    )


class Scene(NamedTuple):
    """Inputs of one view, in the argument order of ``rasterize``."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4]
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]
    colors: Tensor  # [N, D]
    viewmat: Tensor  # [4, 4]
    K: Tensor  # [3, 3]
    width: int
    height: int

    def to(self, device: torch.device | str) -> Scene:
        return Scene(*(t.to(device) if isinstance(t, Tensor) else t for t in self))


def random_scene(
    seed: int,
    *,
    count: int = 300,
    width: int = 100,
    height: int = 70,
    channels: int = 3,
    near: float = 0.01,
    extreme_shapes: bool = True,
    camera_at_origin: bool = False,
) -> Scene:
    """A random view that exercises every rule of the rasterizer.

    A random camera pose with non-square pixels and an off-centre principal point;
    Gaussians in front of the camera (mostly 0.5-4 units away), behind it, near the
    near plane, partly or far off-screen (the Jacobian clamp), large, very thin and
    needle-like (with ``extreme_shapes``), with low (some below 1/255), medium, high
    and above-0.999 opacities. Features are random in [0, 1], with 0/1 weight-like
    columns beyond the third. ``camera_at_origin`` keeps the camera centre at the
    world origin (rotation only), so that float32 world coordinates do not cost
    the Gaussians near the camera their precision.
    """
    gen = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    fx = 0.9 * width * float(uniform(0.8, 1.2))
    fy = fx * float(uniform(0.9, 1.1))
    cx, cy = width * float(uniform(0.35, 0.65)), height * float(uniform(0.35, 0.65))
    K = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    kind = torch.multinomial(torch.tensor([59.0, 10, 8, 3, 12, 8]), count, replacement=True,
                             generator=gen)  # normal, behind, near, large, thin, needle
    z = uniform(0.5, 4.0, count)
    z = torch.where(kind == 1, uniform(-3.0, -0.05, count), z)
    z = torch.where(kind == 2, near * uniform(0.5, 3.0, count), z)
    # Screen position in units of the image, partly off-screen; large ones reach far out.
    spread = torch.where(kind == 3, 2.5, 0.7)
    sx = 0.5 + spread * uniform(-1.0, 1.0, count)
    sy = 0.5 + spread * uniform(-1.0, 1.0, count)
    cam = torch.stack(((sx * width - cx) / fx * z, (sy * height - cy) / fy * z, z), dim=-1)

    # Mostly 0.6-7 px (std) on screen, whatever the depth; large ones 5-20x that.
    scales = torch.exp(uniform(-5.0, -2.5, count, 3)) * z.abs()[:, None] * (90.0 / fx)
    scales = torch.where((kind == 3)[:, None], scales * uniform(5.0, 20.0, count, 1), scales)
    if extreme_shapes:
        axis = torch.randint(0, 3, (count,), generator=gen)
        pick = torch.nn.functional.one_hot(axis, 3).bool()
        scales = torch.where(pick & (kind == 4)[:, None], scales * uniform(0.005, 0.05, count, 3),
                             scales)
        scales = torch.where(pick & (kind == 5)[:, None], scales * uniform(10.0, 40.0, count, 3),
                             scales)

    opacities = torch.where(uniform(0, 1, count) < 0.15, uniform(0.001, 0.02, count),
                            uniform(0.2, 1.0, count))
    opacities = torch.where(uniform(0, 1, count) < 0.05, 0.9995, opacities)
    opacities = torch.where(kind == 3, 0.3 * opacities, opacities)
    colors = uniform(0.0, 1.0, count, channels)
    if channels > 3:
        colors[:, 3:] = (colors[:, 3:] > 0.7).float()

    # A random camera pose: world = R^T (cam - t).
    rotation = _random_rotation(gen)
    translation = uniform(-1.0, 1.0, 3) * (0.0 if camera_at_origin else 1.0)
    viewmat = torch.eye(4)
    viewmat[:3, :3] = rotation
    viewmat[:3, 3] = translation
    means = (cam - translation) @ rotation
    local_quats = torch.nn.functional.normalize(torch.randn(count, 4, generator=gen), dim=-1)
    return Scene(means, local_quats, scales, opacities, colors, viewmat, K, width, height)


def _random_rotation(gen: torch.Generator) -> Tensor:
    q = torch.nn.functional.normalize(torch.randn(4, generator=gen), dim=0)
    w, x, y, z = q.tolist()
    return torch.tensor([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
