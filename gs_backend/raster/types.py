"""Result type and mode names shared by the rasterizer backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

RasterBackend = Literal["auto", "numba", "torch", "gsplat"]
"""Which rasterizer runs: ``"auto"`` picks gsplat for CUDA tensors when CUDA is
available, the compiled CPU rasterizer (numba) for CPU tensors and the pure-torch
tile rasterizer on any other device (Apple's MPS)."""

ConcreteBackend = Literal["numba", "torch", "gsplat"]
"""A backend after ``"auto"`` has been resolved."""


@dataclass(frozen=True)
class RasterResult:
    """One rendered view.

    Attributes:
        colors: ``[H, W, D]`` composited features, background included as ``T * bg``.
        alphas: ``[H, W]`` accumulated opacity, ``1 - T`` (final transmittance).
        depth: ``[H, W]`` expected depth (camera z of the Gaussian centres,
            alpha-weighted and divided by ``max(alpha, 1e-10)``, gsplat's "ED"),
            or ``None`` when not asked for. 0 where nothing was hit.
    """

    colors: Tensor
    alphas: Tensor
    depth: Tensor | None
