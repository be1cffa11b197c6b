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

SH_C1 = math.sqrt(3.0 / (4.0 * math.pi))
SH_C2A = 0.5 * math.sqrt(15.0 / math.pi)
SH_C2B = 0.25 * math.sqrt(5.0 / math.pi)
SH_C2C = 0.25 * math.sqrt(15.0 / math.pi)
SH_C3A = 0.25 * math.sqrt(35.0 / (2.0 * math.pi))
SH_C3B = 0.5 * math.sqrt(105.0 / math.pi)
SH_C3C = 0.25 * math.sqrt(21.0 / (2.0 * math.pi))
SH_C3D = 0.25 * math.sqrt(7.0 / math.pi)
SH_C3E = 0.25 * math.sqrt(105.0 / math.pi)

NORMALIZE_EPS = 1e-12  # same guard as torch.nn.functional.normalize (used by gsplat)


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
    norm = dirs.norm(dim=-1, keepdim=True).clamp_min(NORMALIZE_EPS)
    x, y, z = (dirs / norm).unbind(-1)
    columns = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        columns += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        columns += [
            SH_C2A * x * y,
            -SH_C2A * y * z,
            SH_C2B * (3.0 * zz - 1.0),
            -SH_C2A * x * z,
            SH_C2C * (xx - yy),
        ]
    if degree >= 3:
        five_zz_minus_1 = 5.0 * zz - 1.0
        columns += [
            -SH_C3A * y * (3.0 * xx - yy),
            SH_C3B * x * y * z,
            -SH_C3C * y * five_zz_minus_1,
            SH_C3D * z * (5.0 * zz - 3.0),
            -SH_C3C * x * five_zz_minus_1,
            SH_C3E * z * (xx - yy),
            -SH_C3A * x * (xx - 3.0 * yy),
        ]
    return torch.stack(columns, dim=-1)


def _bands_used(sh: Tensor, degree: int | None) -> int:
    """The degree to evaluate ``sh [..., K, 3]`` at: ``degree``, or all of its bands.

    Raises:
        ValueError: K is no (d + 1)^2, or ``degree`` exceeds d.
    """
    full_degree = sh_degree_from_coeffs(sh.shape[-2])
    degree = full_degree if degree is None else degree
    _check_degree(degree)
    if degree > full_degree:
        raise ValueError(f"SH degree {degree} asked of coefficients of degree {full_degree}")
    return degree


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
    degree = _bands_used(sh, degree)
    basis = sh_basis(degree, dirs).to(sh.dtype)  # [..., k]
    k = num_sh_coeffs(degree)
    return torch.einsum("...k,...kc->...c", basis, sh[..., :k, :])


def gaussian_colors(
    sh: Tensor,  # [N, K, 3]
    means: Tensor,  # [N, 3] world positions
    camera_center: Tensor,  # [3] world position of the camera
    degree: int | None = None,
    *,
    out: Tensor | None = None,  # [N, 3], any strides
) -> Tensor:
    """View-dependent colour of each Gaussian, as gsplat's rasterizer computes it.

    Float32 tensors on the CPU are evaluated by one compiled loop
    (:func:`gs_backend.sh_numba.colors_into`, robust on a busy machine); anything else
    (CUDA, MPS, float64) by the eager torch ops above. Both follow the same formula.

    Args:
        degree: bands to use, as in :func:`eval_sh_colors`.
        out: where to write the colours (e.g. the colour columns of a feature array);
            ``None`` allocates.

    Returns:
        ``[N, 3]`` = ``clamp_min(SH(means - camera_center) + 0.5, 0)`` (``out`` when given).
    """
    degree = _bands_used(sh, degree)
    if _compiled_path(sh, means, out):
        from gs_backend.sh_numba import colors_into

        if out is None:
            out = torch.empty(means.shape[0], 3, dtype=torch.float32)
        center = camera_center.detach().to("cpu", torch.float64).numpy()
        colors_into(sh.detach().numpy(), means.detach().numpy(), center, degree,
                    out.detach().numpy())
        return out
    dirs = means - camera_center.to(means)
    colors = (eval_sh_colors(sh, dirs, degree) + 0.5).clamp_min(0.0)
    return colors if out is None else out.copy_(colors)


def _compiled_path(sh: Tensor, means: Tensor, out: Tensor | None) -> bool:
    """True when the numba kernel can evaluate these tensors: float32 [N, K, 3] and
    [N, 3] on the CPU, and ``out`` (if any) a float32 [N, 3] CPU tensor."""
    tensors = (sh, means) if out is None else (sh, means, out)
    return (sh.ndim == 3 and means.ndim == 2
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors))
