"""Posing whole Gaussian sets by a similarity, and the quaternion helpers (torch).

The pose check itself (gs_contract.pose) is tested in test_contract_pose.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import (
    _quat_scale_to_covar_preci,
    _quat_to_rotmat,
    _spherical_harmonics,
)

from gs_backend import posing
from gs_backend.gaussians import Gaussians
from gs_backend.posing import (
    pose_gaussians,
    quat_multiply,
    rotation_matrix_to_quat,
)
from gs_contract.pose import similarity_from_matrix
from tests.pose_helpers import FIELD, SOURCE, axis_angle, pose_matrix


def random_gaussians(n: int, degree: int, seed: int) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=gen)
    return Gaussians(
        means=torch.randn(n, 3, generator=gen) * 2,
        quats=quats / quats.norm(dim=-1, keepdim=True),
        scales=torch.rand(n, 3, generator=gen) * 0.1 + 0.01,
        opacities=torch.rand(n, generator=gen) * 0.98 + 0.01,
        sh=torch.randn(n, (degree + 1) ** 2, 3, generator=gen) * 0.5,
    )


# ---- quaternions ---------------------------------------------------------------


def test_quaternion_product_composes_like_matrix_product() -> None:
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(500, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(500, 4, generator=gen, dtype=torch.float64)
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    product = _quat_to_rotmat(quat_multiply(a, b))
    assert torch.allclose(product, _quat_to_rotmat(a) @ _quat_to_rotmat(b), atol=1e-13)


def test_rotation_matrix_to_quat_round_trips_every_angle() -> None:
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(2000, 4, generator=gen, dtype=torch.float64)
    rotations = [_quat_to_rotmat(q)]
    # 180-degree turns (trace -1) about axes and arbitrary axes, and the identity.
    for axis in ([1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3], [0, 1, 1e-9]):
        rotations.append(torch.from_numpy(axis_angle(axis, 180))[None])
    rotations.append(torch.from_numpy(axis_angle([0, 0, 1], 179.9999))[None])
    rotations.append(torch.eye(3, dtype=torch.float64)[None])
    r = torch.cat(rotations)
    back = rotation_matrix_to_quat(r)
    assert torch.allclose(back.norm(dim=-1), torch.ones(len(r), dtype=torch.float64))
    assert (back[:, 0] >= 0).all()
    assert (_quat_to_rotmat(back) - r).abs().max().item() < 1e-12


# ---- posing Gaussians ------------------------------------------------------------

POSES = {
    "random": (1.7, axis_angle([0.3, -0.5, 0.8], 71.0), [0.5, -1.0, 2.0]),
    "half_turn": (0.5, axis_angle([1, 0, 0], 180.0), [0.0, 0.0, -3.0]),
    "axis_swap": (1.0, axis_angle([1, 1, 1], 120.0), [1.0, 1.0, 1.0]),
}


@pytest.fixture(params=["numba", "torch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which implementation poses float32 CPU Gaussians: the compiled loop (the default
    there) or the eager torch ops (what other devices run)."""
    if request.param == "torch":
        monkeypatch.setattr(posing, "_compiled_path", lambda g: False)
    return request.param


@pytest.mark.parametrize("name", sorted(POSES))
def test_posed_covariance_and_mean(name: str) -> None:
    scale, rotation, translation = POSES[name]
    pose = similarity_from_matrix(
        pose_matrix(scale, rotation, translation), source=SOURCE, field=FIELD
    )
    g = random_gaussians(3000, 1, seed=4).to(torch.float64)
    posed = pose_gaussians(g, pose)
    r = torch.from_numpy(rotation)
    covar, _ = _quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    posed_covar, _ = _quat_scale_to_covar_preci(posed.quats, posed.scales, compute_preci=False)
    assert torch.allclose(posed_covar, scale**2 * r @ covar @ r.T, atol=1e-12)
    expected_means = scale * g.means @ r.T + torch.tensor(translation, dtype=torch.float64)
    assert torch.allclose(posed.means, expected_means, atol=1e-12)
    assert torch.allclose(posed.scales, scale * g.scales)
    assert torch.allclose(posed.quats.norm(dim=-1), torch.ones(g.count, dtype=torch.float64))
    assert torch.equal(posed.opacities, g.opacities)


@pytest.mark.parametrize("name", sorted(POSES))
def test_posed_covariance_and_mean_float32(name: str, path: str) -> None:
    scale, rotation, translation = POSES[name]
    pose = similarity_from_matrix(
        pose_matrix(scale, rotation, translation), source=SOURCE, field=FIELD
    )
    g = random_gaussians(3000, 3, seed=5)
    posed = pose_gaussians(g, pose)
    assert all(t.dtype == torch.float32 for t in posed._fields())
    assert posed.opacities is g.opacities
    r = torch.from_numpy(rotation)
    g64, posed64 = g.to(torch.float64), posed.to(torch.float64)
    covar, _ = _quat_scale_to_covar_preci(g64.quats, g64.scales, compute_preci=False)
    posed_covar, _ = _quat_scale_to_covar_preci(posed64.quats, posed64.scales,
                                                compute_preci=False)
    expected_covar = scale**2 * r @ covar @ r.T
    assert (posed_covar - expected_covar).abs().max().item() <= 1e-6 * scale**2 * 0.11**2 * 10
    expected_means = scale * g64.means @ r.T + torch.tensor(translation, dtype=torch.float64)
    assert (posed64.means - expected_means).abs().max().item() <= 2e-6 * 10 * scale
    assert torch.allclose(posed.scales, scale * g.scales, rtol=1e-6, atol=0)
    assert (posed64.quats.norm(dim=-1) - 1).abs().max().item() <= 1e-6


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("name", sorted(POSES))
def test_posed_colour_equals_local_colour_along_rotated_back_direction(
    name: str, degree: int, path: str
) -> None:
    """A camera at c in world sees posed Gaussian i along d = m'_i - c; the local
    camera c_local = R^T (c - t) / s sees the original along R^T d / s."""
    scale, rotation, translation = POSES[name]
    pose = similarity_from_matrix(
        pose_matrix(scale, rotation, translation), source=SOURCE, field=FIELD
    )
    g = random_gaussians(3000, degree, seed=degree)
    posed = pose_gaussians(g, pose)
    assert posed.sh.dtype == torch.float32 and posed.means.dtype == torch.float32
    camera = torch.tensor([0.7, -4.0, 1.5])
    seen = _spherical_harmonics(degree, posed.means - camera, posed.sh)
    r = torch.from_numpy(rotation).float()
    local_dirs = (posed.means - camera) @ r  # rows of R^T d
    expected = _spherical_harmonics(degree, local_dirs, g.sh)
    assert (seen - expected).abs().max().item() <= 1e-5
    local_camera = (camera - torch.tensor(translation).float()) @ r / scale
    expected_again = _spherical_harmonics(degree, g.means - local_camera, g.sh)
    assert (seen - expected_again).abs().max().item() <= 1e-4


def test_compiled_path_poses_float32_cpu_gaussians_only() -> None:
    assert posing._compiled_path(random_gaussians(4, 1, seed=1))
    assert not posing._compiled_path(random_gaussians(4, 1, seed=1).to(torch.float64))


def test_identity_pose_returns_the_input_values() -> None:
    g = random_gaussians(100, 3, seed=8)
    posed = pose_gaussians(g, similarity_from_matrix(np.eye(4), source=SOURCE, field=FIELD))
    for a, b in zip(posed._fields(), g._fields(), strict=True):
        assert torch.equal(a, b)
    parsed = similarity_from_matrix(np.eye(4), source=SOURCE, field=FIELD)
    assert parsed.is_identity()


def test_posing_keeps_dtype() -> None:
    g = random_gaussians(10, 2, seed=9).to(torch.float64)
    pose = similarity_from_matrix(
        pose_matrix(2.0, axis_angle([0, 0, 1], 90), [1, 2, 3]), source=SOURCE, field=FIELD
    )
    posed = pose_gaussians(g, pose)
    assert all(t.dtype == torch.float64 for t in posed._fields())
