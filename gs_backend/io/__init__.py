"""Gaussian file I/O: Inria 3DGS PLY (read and write), SuperSplat compressed PLY and
antimatter15 ``.splat`` (read), and the ``info`` summary."""


from gs_backend.io.inria_ply import inria_ply_bytes, inria_property_names, save_inria_ply
from gs_backend.io.loader import GaussianFileFormat, LoadedGaussians, load_gaussians
from gs_backend.io.summary import describe_gaussians, format_summary

__all__ = [
    "GaussianFileFormat",
    "LoadedGaussians",
    "describe_gaussians",
    "format_summary",
    "inria_ply_bytes",
    "inria_property_names",
    "load_gaussians",
    "save_inria_ply",
]
