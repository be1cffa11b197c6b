"""The one entry point, :func:`rasterize`, and the choice of backend."""

from __future__ import annotations

import torch
from torch import Tensor

from gs_backend.raster.types import ConcreteBackend, RasterBackend, RasterResult

_BACKENDS = ("auto", "numba", "torch", "gsplat")


def resolve_backend(backend: RasterBackend, device: torch.device) -> ConcreteBackend:
    """Turn ``"auto"`` into a concrete backend for tensors on ``device``.

    ``"auto"`` is gsplat for CUDA tensors when CUDA is available, the compiled CPU
    rasterizer (``"numba"``) for CPU tensors and the torch rasterizer on other
    devices (MPS): numba runs on the CPU only (it copies tensors from elsewhere).
    Asking for ``"gsplat"`` without CUDA raises ``ValueError``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; expected one of {_BACKENDS}")
    on_cuda = device.type == "cuda" and torch.cuda.is_available()
    if backend == "auto":
        if on_cuda:
            return "gsplat"
        return "numba" if device.type == "cpu" else "torch"
    if backend == "gsplat" and not on_cuda:
        why = "CUDA is not available" if not torch.cuda.is_available() else (
            f"the tensors are on {device}, not on a CUDA device")
        raise ValueError(f"the gsplat rasterizer needs CUDA, but {why}; use backend='torch'")
    return backend


def rasterize(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D] post-activation features, D >= 1
    viewmat: Tensor,  # [4, 4] world -> camera, OpenCV axes
    K: Tensor,  # [3, 3] pixel centres at +0.5
    width: int,
    height: int,
    *,
    background: Tensor | None = None,  # [D]
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    antialiased: bool = False,
    with_depth: bool = False,
    backend: RasterBackend = "auto",
) -> RasterResult:
    """Render Gaussians into one pinhole view with gsplat 1.5's semantics (DESIGN contract 3).

    All backends render the same thing: EWA projection with the clamped
    Jacobian, ``eps2d`` blur, near/far culling, opacity-aware bounding boxes,
    depth-sorted front-to-back compositing with ``alpha = min(0.999, o exp(-sigma))``,
    skips below 1/255 and the stop before transmittance reaches 1e-4; the
    background is added as ``T * background``. ``antialiased`` multiplies
    opacities by gsplat's compensation ``sqrt(det(cov2d) / det(cov2d + eps2d I))``.

    Args:
        means, quats, scales, opacities: the Gaussians, on one device; computed in float32.
        colors: per-Gaussian features, e.g. RGB plus one weight channel per instrument.
        viewmat: world-to-camera matrix, OpenCV axes (x right, y down, z forward).
        K: intrinsics; (0, 0) is the top-left corner of the top-left pixel.
        width, height: image size in pixels.
        background: ``[D]`` features behind everything; ``None`` means zeros.
        near, far: Gaussians whose centre depth is outside ``[near, far]`` are culled.
        eps2d: added to the diagonal of every 2D covariance, pixels^2.
        antialiased: gsplat's ``rasterize_mode="antialiased"``.
        with_depth: also return the expected depth (gsplat's "ED").
        backend: ``"auto"``, ``"numba"``, ``"torch"`` or ``"gsplat"`` (see
            :func:`resolve_backend`).

    Returns:
        :class:`RasterResult` with float32 tensors on the input device.
    """
    n = means.shape[0]
    _check_shapes(means, quats, scales, opacities, colors, viewmat, K, background)
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not near > 0:
        raise ValueError(f"near must be positive, got {near}")
    device = means.device
    chosen = resolve_backend(backend, device)

    def f32(t: Tensor) -> Tensor:
        return t.to(device=device, dtype=torch.float32).contiguous()

    n_colors = colors.shape[1]
    bg = None if background is None else f32(background)
    if n == 0:
        return _empty_view(n_colors, width, height, bg, with_depth, device)
    args = (f32(means), f32(quats), f32(scales), f32(opacities), f32(colors),
            f32(viewmat), f32(K), int(width), int(height))
    options = dict(background=bg, near=float(near), far=float(far), eps2d=float(eps2d),
                   antialiased=bool(antialiased), with_depth=bool(with_depth))
    if chosen == "gsplat":
        from gs_backend.raster.gsplat_cuda import rasterize_gsplat

        return rasterize_gsplat(*args, **options)
    if chosen == "numba":
        from gs_backend.raster.numba_tiles import rasterize_numba

        return rasterize_numba(*args, **options)
    from gs_backend.raster.torch_tiles import rasterize_torch

    with torch.no_grad():
        return rasterize_torch(*args, **options)


def _check_shapes(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
    viewmat: Tensor, K: Tensor, background: Tensor | None,
) -> None:
    n = means.shape[0] if means.ndim == 2 else -1
    expected = {
        "means": (means, (n, 3)), "quats": (quats, (n, 4)), "scales": (scales, (n, 3)),
        "opacities": (opacities, (n,)), "viewmat": (viewmat, (4, 4)), "K": (K, (3, 3)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {shape}")
    if colors.ndim != 2 or colors.shape[0] != n or colors.shape[1] < 1:
        raise ValueError(f"colors has shape {tuple(colors.shape)}, expected [{n}, D], D >= 1")
    if background is not None and tuple(background.shape) != (colors.shape[1],):
        raise ValueError(
            f"background has shape {tuple(background.shape)}, expected ({colors.shape[1]},)")


def _empty_view(
    n_colors: int, width: int, height: int, background: Tensor | None, with_depth: bool,
    device: torch.device,
) -> RasterResult:
    """What every backend renders without any Gaussian: background, alpha 0, depth 0."""
    colors = torch.zeros(height, width, n_colors, dtype=torch.float32, device=device)
    if background is not None:
        colors += background
    alphas = torch.zeros(height, width, dtype=torch.float32, device=device)
    return RasterResult(colors=colors, alphas=alphas,
                        depth=torch.zeros_like(alphas) if with_depth else None)
