"""The CUDA path: gsplat 1.5's fused rasterizer.

gsplat is imported inside the function, so importing this module (and the
package) never touches CUDA or triggers gsplat's extension loading.

Call choices (all semantic choices are DESIGN contract 3, shared with the torch
path):

* ``sh_degree=None``: colours are post-activation features ``[N, D]``, any
  ``D >= 1`` (RGB plus one weight channel per instrument). gsplat pads channel
  counts its kernels are not compiled for (e.g. 6, 7) with zero channels and
  splits more than 32 channels into 32-channel passes; neither changes results.
* ``render_mode="RGB+ED"`` when depth is asked for: gsplat appends the camera z
  of the centres as one more channel with background 0, and divides the
  accumulated depth by ``max(alpha, 1e-10)`` ("expected depth").
* ``packed=False``: with one camera and no gradients, the dense ``[1, N, ...]``
  projection outputs are written in one pass, whereas packed mode adds a
  counting pass, a prefix sum and a gather of the colours ``[nnz, D]``; packed
  mode saves memory only when most of a huge model is culled, and ``N x ~40``
  bytes is small even for millions of Gaussians.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gs_backend.raster.types import RasterResult


def rasterize_gsplat(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    colors: Tensor,  # [N, D]
    viewmat: Tensor,  # [4, 4] world -> camera, OpenCV axes
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    background: Tensor | None,  # [D]
    near: float,
    far: float,
    eps2d: float,
    antialiased: bool,
    with_depth: bool,
) -> RasterResult:
    """Render one view with ``gsplat.rasterization`` (float32 CUDA tensors)."""
    import gsplat  # lazily: heavy, and only meaningful with CUDA

    n_colors = colors.shape[1]
    with torch.no_grad():
        render, alphas, _meta = gsplat.rasterization(
            means, quats, scales, opacities, colors, viewmat[None], K[None],
            width, height,
            near_plane=near, far_plane=far, eps2d=eps2d, sh_degree=None,
            packed=False, tile_size=16,
            backgrounds=None if background is None else background[None],
            render_mode="RGB+ED" if with_depth else "RGB",
            rasterize_mode="antialiased" if antialiased else "classic",
        )
    render = render[0]
    return RasterResult(
        colors=render[..., :n_colors].contiguous(),
        alphas=alphas[0, ..., 0].contiguous(),
        depth=render[..., n_colors].contiguous() if with_depth else None,
    )
