"""Gaussian files on the torch side: :func:`load_gaussians` (any format
:mod:`gs_contract.splats` reads, into :class:`~gs_backend.gaussians.Gaussians`), the Inria
PLY writer for :class:`Gaussians`, and the ``info`` summary."""


from gs_backend.io.inria_ply import inria_ply_bytes, save_inria_ply
from gs_backend.io.loader import LoadedGaussians, gaussians_from_splat, load_gaussians
from gs_backend.io.summary import describe_gaussians, format_summary

__all__ = [
    "LoadedGaussians",
    "describe_gaussians",
    "format_summary",
    "gaussians_from_splat",
    "inria_ply_bytes",
    "load_gaussians",
    "save_inria_ply",
]
