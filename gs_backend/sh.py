"""Real spherical harmonics in the 3DGS / gsplat basis, degrees 0-3.

The basis is the orthonormal real SH basis with the Condon-Shortley phase, bands
ordered l = 0, 1, 2, 3 and, inside band l, m = -l .. l. It is the basis of the
Inria 3DGS code and of gsplat, so coefficients read from an Inria PLY evaluate
here exactly as gsplat's ``rasterization(..., sh_degree=d)`` evaluates them.
Written out, with (x, y, z) a unit direction:

    l = 0:  C0
    l = 1:  -C1 y,  C1 z,  -C1 x
    l = 2:  C2a xy,  -C2a yz,  C2b (3z^2 - 1),  -C2a xz,  C2c (x^2 - y^2)
    l = 3:  -C3a y(3x^2 - y^2),  C3b xyz,  -C3c y(5z^2 - 1),  C3d z(5z^2 - 3),
            -C3c x(5z^2 - 1),  C3e z(x^2 - y^2),  -C3a x(x^2 - 3y^2)

Colours follow DESIGN contract 3: ``clamp_min(SH(mean - camera centre) + 0.5, 0)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gs_backend.gaussians import SH_C0, sh_degree_from_coeffs

MAX_SH_DEGREE = 3

_C1 = math.sqrt(3.0 / (4.0 * math.pi))
_C2A = 0.5 * math.sqrt(15.0 / math.pi)
_C2B = 0.25 * math.sqrt(5.0 / math.pi)
_C2C = 0.25 * math.sqrt(15.0 / math.pi)
_C3A = 0.25 * math.sqrt(35.0 / (2.0 * math.pi))
_C3B = 0.5 * math.sqrt(105.0 / math.pi)
_C3C = 0.25 * math.sqrt(21.0 / (2.0 * math.pi))
_C3D = 0.25 * math.sqrt(7.0 / math.pi)
_C3E = 0.25 * math.sqrt(105.0 / math.pi)

_NORMALIZE_EPS = 1e-12  # same guard as torch.nn.functional.normalize (used by gsplat)


def num_sh_coeffs(degree: int) -> int:
    """Number of SH coefficients per channel up to ``degree``: (degree + 1)^2."""
    return (degree + 1) ** 2


def _check_degree(degree: int) -> None:
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree {degree} is not supported (0..{MAX_SH_DEGREE})")


def sh_basis(
    degree: int,
    dirs: Tensor,  # [..., 3], any length (normalised here)
) -> Tensor:
    """Evaluate the real SH basis up to ``degree`` along ``dirs``.

    Returns:
        ``[..., (degree + 1)^2]`` basis values; a zero direction gives the value
        at (0, 0, 0), as gsplat does.
    """
    _check_degree(degree)
    norm = dirs.norm(dim=-1, keepdim=True).clamp_min(_NORMALIZE_EPS)
    x, y, z = (dirs / norm).unbind(-1)
    columns = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        columns += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        columns += [
            _C2A * x * y,
            -_C2A * y * z,
            _C2B * (3.0 * zz - 1.0),
            -_C2A * x * z,
            _C2C * (xx - yy),
        ]
    if degree >= 3:
        five_zz_minus_1 = 5.0 * zz - 1.0
        columns += [
            -_C3A * y * (3.0 * xx - yy),
            _C3B * x * y * z,
            -_C3C * y * five_zz_minus_1,
            _C3D * z * (5.0 * zz - 3.0),
            -_C3C * x * five_zz_minus_1,
            _C3E * z * (xx - yy),
            -_C3A * x * (xx - 3.0 * yy),
        ]
    return torch.stack(columns, dim=-1)


def eval_sh_colors(
    sh: Tensor,  # [..., K, 3]
    dirs: Tensor,  # [..., 3]
    degree: int | None = None,
) -> Tensor:
    """Raw SH value along ``dirs`` (no +0.5 offset, no clamp).

    Args:
        sh: coefficients, K = (d + 1)^2 for some d in 0..3.
        dirs: viewing directions (normalised here).
        degree: bands to use, at most d; ``None`` uses all of them. Higher
            coefficients are ignored, as in gsplat.

    Returns:
        ``[..., 3]``
    """
    full_degree = sh_degree_from_coeffs(sh.shape[-2])
    degree = full_degree if degree is None else degree
    if degree > full_degree:
        raise ValueError(f"SH degree {degree} asked of coefficients of degree {full_degree}")
    basis = sh_basis(degree, dirs).to(sh.dtype)  # [..., k]
    k = num_sh_coeffs(degree)
    return torch.einsum("...k,...kc->...c", basis, sh[..., :k, :])


def gaussian_colors(
    sh: Tensor,  # [N, K, 3]
    means: Tensor,  # [N, 3] world positions
    camera_center: Tensor,  # [3] world position of the camera
    degree: int | None = None,
) -> Tensor:
    """View-dependent colour of each Gaussian, as gsplat's rasterizer computes it.

    Returns:
        ``[N, 3]`` = ``clamp_min(SH(means - camera_center) + 0.5, 0)``.
    """
    dirs = means - camera_center.to(means)
    return (eval_sh_colors(sh, dirs, degree) + 0.5).clamp_min(0.0)
