"""Rasterize 3D Gaussians into one view: gsplat on CUDA, a tile-binned torch
rasterizer everywhere else, both with gsplat 1.5's semantics (DESIGN contract 3).

gsplat itself is imported only when the CUDA backend runs.
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
