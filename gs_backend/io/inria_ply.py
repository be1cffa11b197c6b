"""Write :class:`Gaussians` as an Inria 3DGS PLY (the format itself, its exactness
guarantees and the atomic write live in :mod:`gs_contract.splats.inria`)."""

from __future__ import annotations

from pathlib import Path

from gs_backend.gaussians import Gaussians
from gs_contract.splats import inria_ply_bytes as _inria_ply_bytes
from gs_contract.splats import save_inria_ply as _save_inria_ply


def _arrays(g: Gaussians) -> tuple:
    return tuple(t.detach().cpu().numpy() for t in (g.means, g.quats, g.scales, g.opacities,
                                                    g.sh))


def inria_ply_bytes(g: Gaussians, *, with_normals: bool = False) -> bytes:
    """``g`` serialised as a binary little-endian Inria PLY."""
    return _inria_ply_bytes(*_arrays(g), with_normals=with_normals)


def save_inria_ply(path: str | Path, g: Gaussians, *, with_normals: bool = False) -> None:
    """Write ``g`` to ``path`` as an Inria PLY (atomically)."""
    _save_inria_ply(path, *_arrays(g), with_normals=with_normals)
