"""EWA projection of 3D Gaussians to screen-space ellipses, in plain torch.

This follows gsplat 1.5's fused pinhole projection (``fully_fused_projection``
with opacities, classic and antialiased modes) step for step, so that the
tile rasterizer built on it renders what gsplat renders (DESIGN contract 3):

1. centres to camera space; culled unless ``near <= z <= far``;
2. covariance ``R diag(s^2) R^T`` to camera space, then through the perspective
   Jacobian whose ``x/z`` and ``y/z`` are clamped to the frustum widened by 15 %
   of the image size on each side (``0.3 * tan(fov / 2)``);
3. ``eps2d`` added to the diagonal of the 2D covariance ("blur"); culled when its
   determinant is not positive; the antialiasing compensation is
   ``sqrt(max(0, det_before / det_after))``;
4. opacity (times the compensation in antialiased mode) below 1/255 culls the
   Gaussian; otherwise its bounding box reaches ``extend`` standard deviations,
   ``extend = min(3.33, sqrt(2 ln(255 * opacity)))``: exactly where its alpha
   falls to 1/255 (the opacity-aware bound of arXiv:2402.00525, B.2);
5. Gaussians whose box lies wholly outside the image are culled.

Everything is computed with elementwise float32 ops over ``[N]`` tensors, which
is fast on CPU and works on any torch device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
"""A Gaussian whose alpha at a pixel is below this is skipped there."""
MAX_EXTEND = 3.33
"""Upper bound of the bounding-box half size, in standard deviations."""
JACOBIAN_FOV_MARGIN = 0.3
"""The Jacobian's ``x/z`` is clamped ``0.3 * tan(fov_x / 2)`` beyond the image edges."""


@dataclass(frozen=True)
class ProjectedGaussians:
    """The Gaussians that survived culling, in their input order.

    Attributes:
        ids: ``[M]`` int64 index of each into the input arrays (increasing).
        means2d: ``[M, 2]`` projected centres, pixels (pixel centres at +0.5).
        conics: ``[M, 3]`` inverse of the blurred 2D covariance: xx, xy, yy, 1/px^2.
        conic_roots: ``[M, 3]`` (p, q, r), a triangular square root of the conic:
            ``sigma = 0.5 ((p dx + q dy)^2 + (r dy)^2)`` for an offset (dx, dy) in pixels.
        depths: ``[M]`` camera-space z of the centres.
        opacities: ``[M]`` opacities, times the compensation in antialiased mode.
        radii: ``[M, 2]`` half width and half height of the bounding box, whole pixels
            (kept as floats: a huge Gaussian's box may not fit an int32).
    """

    ids: Tensor
    means2d: Tensor
    conics: Tensor
    conic_roots: Tensor
    depths: Tensor
    opacities: Tensor
    radii: Tensor

    @property
    def count(self) -> int:
        return int(self.ids.shape[0])


def rotation_matrices(quats: Tensor) -> Tensor:
    """Rotation matrices ``[N, 3, 3]`` of quaternions ``[N, 4]`` (wxyz, normalised here)."""
    q = quats * torch.rsqrt((quats * quats).sum(dim=-1, keepdim=True))
    w, x, y, z = q.unbind(-1)
    x2, y2, z2 = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = (
        1.0 - 2.0 * (y2 + z2), 2.0 * (xy - wz), 2.0 * (xz + wy),
        2.0 * (xy + wz), 1.0 - 2.0 * (x2 + z2), 2.0 * (yz - wx),
        2.0 * (xz - wy), 2.0 * (yz + wx), 1.0 - 2.0 * (x2 + y2),
    )
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)


def project_gaussians(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3] linear
    opacities: Tensor,  # [N]
    viewmat: Tensor,  # [4, 4] world -> camera, OpenCV axes
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    near: float,
    far: float,
    eps2d: float,
    antialiased: bool,
) -> ProjectedGaussians:
    """Project Gaussians to the image and cull the ones that cannot be seen.

    All float inputs must share one dtype (float32 for gsplat parity) and device.
    Returns only the surviving Gaussians (see :class:`ProjectedGaussians`).
    """
    rot_cam = viewmat[:3, :3]
    # World -> camera in float64 where the device has it: a Gaussian close to the
    # camera but far from the world origin would otherwise lose its camera-space
    # position to cancellation, and its projected centre by up to ~1e-3 px.
    wide = means.dtype if means.device.type == "mps" else torch.float64
    means_cam = (means.to(wide) @ viewmat[:3, :3].to(wide).T + viewmat[:3, 3].to(wide))
    means_cam = means_cam.to(means.dtype)
    depth = means_cam[:, 2]
    ids = torch.nonzero((depth >= near) & (depth <= far)).squeeze(1)
    if ids.numel() < means.shape[0]:
        means_cam, depth = means_cam[ids], depth[ids]
        quats, scales, opacities = quats[ids], scales[ids], opacities[ids]

    # Camera-space covariance as M M^T with M = R_cam R S: the same matrix as
    # gsplat's R_cam (R S S R^T) R_cam^T, but without squaring before the
    # projection, which keeps thin Gaussians seen end-on accurate in float32.
    sqrt_cov = rot_cam @ (rotation_matrices(quats) * scales[:, None, :])  # [M, 3, 3]

    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lim_x_pos = (width - cx) / fx + JACOBIAN_FOV_MARGIN * (0.5 * width / fx)
    lim_x_neg = cx / fx + JACOBIAN_FOV_MARGIN * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + JACOBIAN_FOV_MARGIN * (0.5 * height / fy)
    lim_y_neg = cy / fy + JACOBIAN_FOV_MARGIN * (0.5 * height / fy)
    x, y = means_cam[:, 0], means_cam[:, 1]
    rz = 1.0 / depth
    # Jacobian rows (fx/z, 0, -fx tx/z^2) and (0, fy/z, -fy ty/z^2), tx/z and ty/z clamped;
    # the 2D covariance is (J M)(J M)^T.
    tx_rz = torch.minimum(torch.maximum(x * rz, -lim_x_neg), lim_x_pos)
    ty_rz = torch.minimum(torch.maximum(y * rz, -lim_y_neg), lim_y_pos)
    row_x = (fx * rz)[:, None] * (sqrt_cov[:, 0, :] - tx_rz[:, None] * sqrt_cov[:, 2, :])
    row_y = (fy * rz)[:, None] * (sqrt_cov[:, 1, :] - ty_rz[:, None] * sqrt_cov[:, 2, :])
    cov_xx = (row_x * row_x).sum(-1)
    cov_xy = (row_x * row_y).sum(-1)
    cov_yy = (row_y * row_y).sum(-1)

    # Determinants by Cauchy-Binet, det((J M)(J M)^T) = |row_x x row_y|^2, and
    # det(C + eps I) = det C + eps tr C + eps^2: no cancellation, so nearly
    # degenerate (line-like) projections keep their precision in float32.
    det_orig = torch.linalg.cross(row_x, row_y).square().sum(-1)
    det = det_orig + eps2d * (cov_xx + cov_yy) + eps2d * eps2d
    blur_xx = cov_xx + eps2d
    blur_yy = cov_yy + eps2d
    inv_det = 1.0 / det
    conics = torch.stack((blur_yy * inv_det, -cov_xy * inv_det, blur_xx * inv_det), dim=-1)
    # conic = L^T L with L = [[p, q], [0, r]]: p = sqrt(yy / det), q = -xy / sqrt(det yy),
    # r = 1 / sqrt(yy) (yy, xy of the blurred covariance).
    root_det_yy = torch.sqrt(det * blur_yy)
    conic_roots = torch.stack(
        (blur_yy / root_det_yy, -cov_xy / root_det_yy, torch.rsqrt(blur_yy)), dim=-1)
    if antialiased:
        opacities = opacities * torch.sqrt(det_orig / det)

    visible = (det > 0) & (opacities >= ALPHA_THRESHOLD)
    log_ratio = torch.log(torch.where(visible, opacities, 1.0) / ALPHA_THRESHOLD)
    extend = torch.clamp(torch.sqrt(2.0 * log_ratio), max=MAX_EXTEND)
    radius_x = torch.ceil(extend * torch.sqrt(blur_xx))
    radius_y = torch.ceil(extend * torch.sqrt(blur_yy))
    mean_x = fx * x * rz + cx
    mean_y = fy * y * rz + cy
    visible &= (radius_x > 0) & (radius_y > 0)
    visible &= (mean_x + radius_x > 0) & (mean_x - radius_x < width)
    visible &= (mean_y + radius_y > 0) & (mean_y - radius_y < height)

    keep = torch.nonzero(visible).squeeze(1)
    return ProjectedGaussians(
        ids=ids[keep],
        means2d=torch.stack((mean_x[keep], mean_y[keep]), dim=-1),
        conics=conics[keep],
        conic_roots=conic_roots[keep],
        depths=depth[keep],
        opacities=opacities[keep],
        radii=torch.stack((radius_x[keep], radius_y[keep]), dim=-1),
    )
