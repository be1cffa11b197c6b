"""Posing Gaussians by a similarity transform (DESIGN contracts 1 and 2).

A scenario pose is checked and split into (s, R, t) once, when the scenario is read
(:func:`gs_contract.pose.similarity_from_matrix`); posing by that
:class:`~gs_contract.pose.Similarity` maps each Gaussian as

    mean -> s R mean + t,   quat -> q_R * quat,   scale -> s * scale,

and rotates every SH band so that colour(d) = colour_local(R^T d).

Quaternions are wxyz (Hamilton convention), as in gsplat and the Inria PLY.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gs_backend.gaussians import Gaussians
from gs_backend.sh_rotation import rotate_sh, sh_rotation_block
from gs_contract.pose import Similarity


def quat_multiply(
    a: Tensor,  # [..., 4] wxyz
    b: Tensor,  # [..., 4] wxyz
) -> Tensor:
    """Hamilton product ``a * b`` (rotation by b, then by a). Returns ``[..., 4]``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotation_matrix_to_quat(
    rotation: Tensor,  # [..., 3, 3] proper rotation
) -> Tensor:
    """Unit quaternion (wxyz, w >= 0) of a rotation matrix, robust for any
    angle including 180 degrees.

    Shepperd's method: of the four expressions 4w^2 = 1 + tr R, 4x^2 = 1 + 2 R00 - tr R,
    and so on, the largest is used for the division, so the result never divides
    by a small number. Returns ``[..., 4]``.
    """
    r = rotation
    r00, r01, r02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    r10, r11, r12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    r20, r21, r22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    trace = r00 + r11 + r22
    # Each candidate is 4 * q_k * q for k = w, x, y, z, as an (unnormalised) wxyz vector.
    candidates = torch.stack(
        [
            torch.stack([1 + trace, r21 - r12, r02 - r20, r10 - r01], dim=-1),
            torch.stack([r21 - r12, 1 + 2 * r00 - trace, r01 + r10, r02 + r20], dim=-1),
            torch.stack([r02 - r20, r01 + r10, 1 + 2 * r11 - trace, r12 + r21], dim=-1),
            torch.stack([r10 - r01, r02 + r20, r12 + r21, 1 + 2 * r22 - trace], dim=-1),
        ],
        dim=-2,
    )  # [..., 4, 4]
    diagonal = torch.stack(
        [1 + trace, 1 + 2 * r00 - trace, 1 + 2 * r11 - trace, 1 + 2 * r22 - trace], dim=-1
    )
    best = diagonal.argmax(dim=-1, keepdim=True)  # [..., 1]
    q = torch.gather(candidates, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def pose_gaussians(g: Gaussians, pose: Similarity) -> Gaussians:
    """Move Gaussians from asset coordinates to world by ``pose``.

    mean -> s R mean + t; quat -> normalise(q_R * quat); scale -> s * scale;
    opacities unchanged (the same tensor); SH rotated so that colour(d) = colour_local(R^T d).
    Works on ``g``'s device and dtype: float32 on the CPU runs one compiled loop
    (:func:`gs_backend.posing_numba.pose_into`), anything else eager torch ops. The exact
    identity returns ``g`` itself.
    """
    if pose.is_identity():
        return g
    rotation64 = torch.as_tensor(pose.rotation, dtype=torch.float64)  # no copy
    rotation_quat = rotation_matrix_to_quat(rotation64)
    if _compiled_path(g):
        return _pose_compiled(g, pose, rotation64, rotation_quat)
    dtype, device = g.means.dtype, g.means.device
    rotation = rotation64.to(device=device, dtype=dtype)
    translation = torch.as_tensor(pose.translation, dtype=dtype, device=device)
    means = torch.addmm(translation, g.means, rotation.T, alpha=pose.scale)
    quats = F.normalize(
        quat_multiply(rotation_quat.to(device=device, dtype=dtype), g.quats), dim=-1
    )
    scales = g.scales * pose.scale
    sh = rotate_sh(g.sh, rotation64)
    return Gaussians(means, quats, scales, g.opacities, sh)


def _compiled_path(g: Gaussians) -> bool:
    """True when the numba kernel poses ``g``: float32 tensors on the CPU."""
    return g.device.type == "cpu" and g.means.dtype == torch.float32


def _pose_compiled(g: Gaussians, pose: Similarity, rotation64: Tensor,
                   rotation_quat: Tensor) -> Gaussians:
    """:func:`pose_gaussians` for float32 CPU Gaussians, by the numba kernel."""
    from gs_backend.posing_numba import pose_into

    def arr(t: Tensor) -> np.ndarray:
        return t.detach().contiguous().numpy()

    posed = Gaussians(torch.empty_like(g.means), torch.empty_like(g.quats),
                      torch.empty_like(g.scales), g.opacities,
                      torch.empty(g.sh.shape, dtype=torch.float32))
    block = sh_rotation_block(rotation64, g.sh_degree)  # also checks the rotation
    pose_into(arr(g.means), arr(g.quats), arr(g.scales), arr(g.sh), float(pose.scale),
              rotation64.numpy(), np.asarray(pose.translation, dtype=np.float64),
              rotation_quat.numpy(), block.numpy(), g.sh_degree, posed.means.numpy(),
              posed.quats.numpy(), posed.scales.numpy(), posed.sh.numpy())
    return posed
