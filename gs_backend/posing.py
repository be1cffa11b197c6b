"""Posing Gaussians by a similarity transform (DESIGN contracts 1 and 2).

A scenario pose is a 4x4 row-major matrix that maps an asset's own (PLY)
coordinates to world coordinates. Its 3x3 part may carry a uniform positive
scale; anything else (shear, non-uniform scale, mirror, zero scale) is refused
here, with the source file, the field (``frames[3].poses.driver``) and the
measured anisotropy. Posing by (s, R, t) maps each Gaussian as

    mean -> s R mean + t,   quat -> q_R * quat,   scale -> s * scale,

and rotates every SH band so that colour(d) = colour_local(R^T d).

Quaternions are wxyz (Hamilton convention), as in gsplat and the Inria PLY.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gs_backend.gaussians import Gaussians
from gs_backend.sh_rotation import rotate_sh
from gs_contract.errors import PoseError

MatrixLike = Sequence[Sequence[float]] | np.ndarray | Tensor


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation.

    Attributes:
        scale: uniform scale, > 0.
        rotation: ``[3, 3]`` proper rotation (float64).
        translation: ``[3]`` (float64).
    """

    scale: float
    rotation: Tensor  # [3, 3]
    translation: Tensor  # [3]

    @staticmethod
    def identity() -> Similarity:
        """The pose that leaves every Gaussian where it is."""
        return Similarity(
            1.0, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
        )

    def matrix(self) -> Tensor:
        """The ``[4, 4]`` homogeneous matrix (float64)."""
        out = torch.eye(4, dtype=torch.float64)
        out[:3, :3] = self.scale * self.rotation.to(device="cpu", dtype=torch.float64)
        out[:3, 3] = self.translation.to(device="cpu", dtype=torch.float64)
        return out

    def is_identity(self) -> bool:
        """True when the pose is exactly the identity (no rounding allowed)."""
        return (
            self.scale == 1.0
            and bool(torch.equal(self.rotation, torch.eye(3).to(self.rotation)))
            and not bool(self.translation.any())
        )


def similarity_from_matrix(
    matrix: MatrixLike,  # [4, 4] row-major, asset (PLY) coordinates -> world
    *,
    source: str | Path,
    field: str,
    tolerance: float = 1e-4,
) -> Similarity:
    """Split a pose matrix into (scale, rotation, translation), or refuse it.

    The 3x3 part A is decomposed by SVD, A = U diag(sigma) V^T. Its anisotropy
    sigma_max / sigma_min - 1 is 0 for a similarity; float32 matrices exported
    by Blender show about 1e-7, so anything up to ``tolerance`` is accepted and
    the nearest similarity is kept: rotation U V^T, scale mean(sigma).

    Raises:
        PoseError: naming ``source`` and ``field``, for a wrong shape, non-finite
            entries, a last row other than [0, 0, 0, 1], a singular (zero-scale)
            3x3 part, shear or non-uniform scale (with the anisotropy), or a
            negative determinant (mirror or negative scale).
    """

    def refuse(problem: str, anisotropy: float | None = None) -> PoseError:
        return PoseError(source, field, problem, anisotropy=anisotropy)

    if isinstance(matrix, Tensor):
        matrix = matrix.detach().cpu().numpy()
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise refuse(f"expected a 4x4 matrix of numbers ({error})") from None
    if m.shape != (4, 4):
        raise refuse(f"expected a 4x4 matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        bad = [f"[{i}][{j}]" for i, j in np.argwhere(~np.isfinite(m))]
        raise refuse(f"non-finite entries at {', '.join(bad)}")
    last_row = m[3]
    if np.abs(last_row - [0.0, 0.0, 0.0, 1.0]).max() > tolerance:
        raise refuse(f"last row must be [0, 0, 0, 1], got {last_row.tolist()}")

    linear = m[:3, :3]
    u, sigma, vt = np.linalg.svd(linear)
    sigma_max, sigma_min = float(sigma[0]), float(sigma[-1])
    if sigma_max <= 0.0:
        raise refuse("zero scale: the 3x3 part is all zeros")
    if sigma_min <= 0.0:
        raise refuse(
            f"zero scale: the 3x3 part is singular (scale factors {_factors(sigma)}, "
            "anisotropy infinite)",
            anisotropy=math.inf,
        )
    anisotropy = sigma_max / sigma_min - 1.0
    if anisotropy > tolerance:
        raise refuse(
            f"not a similarity: anisotropy {anisotropy:.3g} (shear or non-uniform scale)",
            anisotropy=anisotropy,
        )
    if np.linalg.det(linear) < 0.0:
        raise refuse(
            "negative determinant: a mirror or negative scale is not a valid pose "
            f"(scale factors {_factors(sigma)} with a reflection, anisotropy "
            f"{anisotropy:.3g})",
            anisotropy=anisotropy,
        )
    rotation = u @ vt  # nearest rotation; det = +1 since det(linear) > 0
    return Similarity(
        scale=float(sigma.mean()),
        rotation=torch.from_numpy(rotation),
        translation=torch.from_numpy(m[:3, 3].copy()),
    )


def _factors(sigma: np.ndarray) -> str:
    """The singular values (scale factors) ``[3]`` as a short list for messages."""
    return "[" + ", ".join(f"{s:.3g}" for s in sigma) + "]"


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


def quat_to_rotation_matrix(
    q: Tensor,  # [..., 4] wxyz, any non-zero length (normalised here)
) -> Tensor:
    """Rotation matrix of a quaternion. Returns ``[..., 3, 3]``."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z),
        2 * (x * y - w * z),
        2 * (x * z + w * y),
        2 * (x * y + w * z),
        1 - 2 * (x * x + z * z),
        2 * (y * z - w * x),
        2 * (x * z - w * y),
        2 * (y * z + w * x),
        1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


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
    opacities unchanged; SH rotated so that colour(d) = colour_local(R^T d).
    Works on ``g``'s device and dtype. The exact identity returns ``g`` itself.
    """
    if pose.is_identity():
        return g
    dtype, device = g.means.dtype, g.means.device
    rotation = pose.rotation.to(device=device, dtype=dtype)
    translation = pose.translation.to(device=device, dtype=dtype)
    means = torch.addmm(translation, g.means, rotation.T, alpha=pose.scale)
    rotation_quat = rotation_matrix_to_quat(pose.rotation.to(torch.float64))
    quats = F.normalize(
        quat_multiply(rotation_quat.to(device=device, dtype=dtype), g.quats), dim=-1
    )
    scales = g.scales * pose.scale
    sh = rotate_sh(g.sh, pose.rotation)
    return Gaussians(means, quats, scales, g.opacities, sh)
