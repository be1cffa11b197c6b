"""Exact rotation of SH coefficients (the Wigner matrices of the 3DGS real basis).

Rotating an object by R must rotate its view-dependent colour with it (DESIGN
contract 2): the rotated coefficients c' satisfy, for every unit direction d,

    colour'(d) = colour(R^T d).

Each band l is closed under rotation, so c'_l = D_l(R) c_l with one
(2l+1) x (2l+1) matrix per band. Because the basis is orthonormal, D_l is the
projection of the rotated basis onto the basis:

    D_l[a, b] = integral over the sphere of Y_la(d) Y_lb(R^T d) dd.

The integrand is a polynomial of degree 2l <= 6 in d, so a product quadrature
(Gauss-Legendre nodes in z times equally spaced azimuths) with 4 x 7 nodes
integrates it *exactly*: 4 Gauss-Legendre nodes are exact for polynomials in z
up to degree 7, and 7 equally spaced azimuths are exact for trigonometric
polynomials up to degree 6. The construction is therefore exact up to float64
rounding, involves no linear solve (the Gram matrix of the basis on the nodes
is the identity, condition number 1), and D_l comes out orthogonal.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from gs_backend.gaussians import sh_degree_from_coeffs
from gs_backend.sh import MAX_SH_DEGREE, sh_basis

_QUADRATURE_Z_NODES = MAX_SH_DEGREE + 1  # Gauss-Legendre: exact up to z^(2n-1) = z^7
_QUADRATURE_AZIMUTHS = 2 * MAX_SH_DEGREE + 1  # exact for cos/sin(k phi), |k| <= 6
_ROTATION_TOLERANCE = 1e-4


@lru_cache(maxsize=1)
def _sphere_quadrature() -> tuple[Tensor, Tensor]:
    """Nodes ``[Q, 3]`` and weights ``[Q]`` (float64, CPU), exact on the sphere for
    polynomials of degree <= 2 * MAX_SH_DEGREE; the weights sum to 4 pi."""
    z, z_weights = np.polynomial.legendre.leggauss(_QUADRATURE_Z_NODES)
    phi = 2.0 * math.pi * np.arange(_QUADRATURE_AZIMUTHS) / _QUADRATURE_AZIMUTHS
    z, z_weights = torch.from_numpy(z), torch.from_numpy(z_weights)
    phi = torch.from_numpy(phi)
    ring = torch.sqrt(1.0 - z * z)[:, None]  # [Z, 1]
    nodes = torch.stack(
        [ring * torch.cos(phi), ring * torch.sin(phi), z[:, None].expand(-1, phi.numel())],
        dim=-1,
    ).reshape(-1, 3)
    weights = (
        (z_weights[:, None] * (2.0 * math.pi / _QUADRATURE_AZIMUTHS))
        .expand(-1, phi.numel())
        .reshape(-1)
    )
    return nodes, weights


def _small_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for the few-by-few CPU matrices here, as a broadcast product and sum.

    The BLAS behind ``@`` runs even a 16 x 28 product on all of its threads; on a busy
    machine one of them is descheduled and the product waits for it (measured: 1.7 ms
    instead of 0.01 ms, and ~14 ms per pose inside a render). Small elementwise ops stay
    on one thread.
    """
    return (a[:, :, None] * b[None, :, :]).sum(dim=1)


def _check_rotation(rotation: Tensor) -> Tensor:
    if tuple(rotation.shape) != (3, 3):
        raise ValueError(f"rotation has shape {tuple(rotation.shape)}, expected (3, 3)")
    r = rotation.detach().to(device="cpu", dtype=torch.float64)
    error = (_small_matmul(r.T, r) - torch.eye(3, dtype=torch.float64)).abs().max().item()
    if not error <= _ROTATION_TOLERANCE or torch.linalg.det(r).item() <= 0.0:
        raise ValueError("rotation is not a proper rotation matrix (R^T R = I, det R = +1)")
    return r


def sh_rotation_matrices(
    rotation: Tensor,  # [3, 3] proper rotation
    degree: int,
) -> list[Tensor]:
    """Wigner matrices of the 3DGS real SH basis for bands 1..degree.

    Returns:
        ``[D_1, ..., D_degree]``, ``D_l`` of shape ``[2l+1, 2l+1]`` in float64 on
        the CPU, such that rotated band coefficients are ``D_l @ c_l``.
    """
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree {degree} is not supported (0..{MAX_SH_DEGREE})")
    r = _check_rotation(rotation)
    if degree == 0:
        return []
    nodes, weights = _sphere_quadrature()
    basis = sh_basis(degree, nodes)  # [Q, K]: Y(d_q)
    rotated_basis = sh_basis(degree, _small_matmul(nodes, r))  # [Q, K]: Y(R^T d_q), rows d_q^T R
    projection = _small_matmul((basis * weights[:, None]).T, rotated_basis)  # [K, K]
    return [
        projection[l * l : (l + 1) ** 2, l * l : (l + 1) ** 2].contiguous()
        for l in range(1, degree + 1)
    ]


def sh_rotation_block(
    rotation: Tensor,  # [3, 3] proper rotation
    degree: int,
) -> Tensor:
    """Block-diagonal ``[K, K]`` (K = (degree+1)^2, float64, CPU) that rotates a
    whole coefficient vector: 1 for band 0, then ``D_1 .. D_degree``."""
    blocks = [torch.ones(1, 1, dtype=torch.float64), *sh_rotation_matrices(rotation, degree)]
    return torch.block_diag(*blocks)


def rotate_sh(
    sh: Tensor,  # [..., K, 3]
    rotation: Tensor,  # [3, 3] proper rotation
) -> Tensor:
    """Rotate SH coefficients so that ``colour'(d) = colour(R^T d)``.

    Band 0 is unchanged. Works on ``sh``'s device and dtype. All bands go
    through one matrix product, so a non-finite coefficient makes its whole
    Gaussian non-finite (the loader drops such Gaussians: ``gs_contract.splats.usable_rows``).

    Returns:
        ``[..., K, 3]``
    """
    num_coeffs = sh.shape[-2]
    degree = sh_degree_from_coeffs(num_coeffs)
    if degree == 0:
        _check_rotation(rotation)
        return sh.clone()
    block = sh_rotation_block(rotation, degree)  # [K, K]
    # One GEMM over all Gaussians: the flattened [K * 3] coefficient rows of sh
    # are mapped by kron(block, I_3), which applies block to each colour channel.
    channel_map = torch.kron(block, torch.eye(3, dtype=torch.float64))
    channel_map = channel_map.to(device=sh.device, dtype=sh.dtype)
    flat = sh.reshape(-1, num_coeffs * 3)
    return (flat @ channel_map.T).reshape(sh.shape)
