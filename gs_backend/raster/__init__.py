"""Rasterize 3D Gaussians into one view with gsplat 1.5's semantics (DESIGN contract 3):
gsplat on CUDA, compiled per-tile kernels (numba) on the CPU, a tile-binned eager-torch
rasterizer on any other device (and on request).

gsplat and numba are imported only when their backend runs.
"""

from gs_backend.raster.dispatch import rasterize, resolve_backend
from gs_backend.raster.projection import ProjectedGaussians, project_gaussians
from gs_backend.raster.types import ConcreteBackend, RasterBackend, RasterResult

__all__ = [
    "ConcreteBackend",
    "ProjectedGaussians",
    "RasterBackend",
    "RasterResult",
    "project_gaussians",
    "rasterize",
    "resolve_backend",
]
