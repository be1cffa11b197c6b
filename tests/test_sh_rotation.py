"""Exact SH rotation: colour'(d) == colour(R^T d), checked with gsplat's evaluator."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.cuda._torch_impl import _quat_to_rotmat, _spherical_harmonics

from gs_backend.sh import sh_basis
from gs_backend.sh_rotation import _sphere_quadrature, rotate_sh, sh_rotation_matrices


def axis_angle(axis: list[float], degrees: float) -> torch.Tensor:
    """Rodrigues' formula, float64 — independent of the code under test."""
    a = torch.tensor(axis, dtype=torch.float64)
    a = a / a.norm()
    k = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=torch.float64)
    t = math.radians(degrees)
    return torch.eye(3, dtype=torch.float64) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


def random_rotation(seed: int) -> torch.Tensor:
    q = torch.randn(1, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return _quat_to_rotmat(q)[0]


ROTATIONS = {
    **{f"random{seed}": random_rotation(seed) for seed in range(4)},
    "x180": axis_angle([1, 0, 0], 180),
    "y180": axis_angle([0, 1, 0], 180),
    "z180": axis_angle([0, 0, 1], 180),
    "diag180": axis_angle([1, -2, 0.5], 180),
    "z90": axis_angle([0, 0, 1], 90),
    "cyclic": torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64),
    "tiny": axis_angle([0.3, 0.2, 1], 1e-3),
}


@pytest.mark.parametrize("name", sorted(ROTATIONS))
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_rotated_colour_equals_colour_seen_from_rotated_direction(name: str, degree: int) -> None:
    rotation = ROTATIONS[name]
    gen = torch.Generator().manual_seed(degree * 100 + len(name))
    n = 2000
    sh = torch.randn(n, (degree + 1) ** 2, 3, generator=gen)
    dirs = torch.randn(n, 3, generator=gen)
    rotated = rotate_sh(sh, rotation.float())
    assert rotated.dtype == torch.float32 and rotated.shape == sh.shape
    seen = _spherical_harmonics(degree, dirs, rotated)
    # Row-vector form of R^T d is d^T R.
    expected = _spherical_harmonics(degree, (dirs.double() @ rotation).float(), sh)
    assert (seen - expected).abs().max().item() <= 1e-5
    assert torch.equal(rotated[:, 0], sh[:, 0])  # band 0 untouched


@pytest.mark.parametrize("name", sorted(ROTATIONS))
def test_band_matrices_are_orthogonal(name: str) -> None:
    matrices = sh_rotation_matrices(ROTATIONS[name], 3)
    assert [tuple(m.shape) for m in matrices] == [(3, 3), (5, 5), (7, 7)]
    for m in matrices:
        eye = torch.eye(m.shape[0], dtype=torch.float64)
        assert (m @ m.T - eye).abs().max().item() < 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_composition(seed: int) -> None:
    r1, r2 = random_rotation(10 + seed), random_rotation(20 + seed)
    if seed == 2:
        r1 = axis_angle([0, 1, 0], 180)
    for d12, d1, d2 in zip(
        sh_rotation_matrices(r1 @ r2, 3),
        sh_rotation_matrices(r1, 3),
        sh_rotation_matrices(r2, 3),
        strict=True,
    ):
        assert (d12 - d1 @ d2).abs().max().item() < 1e-12


def test_identity_gives_identity() -> None:
    for m in sh_rotation_matrices(torch.eye(3), 3):
        assert (m - torch.eye(m.shape[0], dtype=torch.float64)).abs().max().item() < 1e-14
    sh = torch.randn(50, 16, 3, generator=torch.Generator().manual_seed(5))
    assert (rotate_sh(sh, torch.eye(3)) - sh).abs().max().item() < 1e-6


def test_band_one_is_the_rotation_in_permuted_axes() -> None:
    """Y_1 = C1 * S d with S d = (-y, z, -x), so D_1 = S R S^T."""
    s = torch.tensor([[0, -1, 0], [0, 0, 1], [-1, 0, 0]], dtype=torch.float64)
    for rotation in ROTATIONS.values():
        (d1,) = sh_rotation_matrices(rotation, 1)
        assert (d1 - s @ rotation @ s.T).abs().max().item() < 1e-12


def test_quadrature_makes_the_basis_gram_matrix_the_identity() -> None:
    """The property that makes the construction exact and perfectly conditioned."""
    nodes, weights = _sphere_quadrature()
    assert (nodes.norm(dim=-1) - 1).abs().max().item() < 1e-15
    assert abs(weights.sum().item() - 4 * math.pi) < 1e-13
    basis = sh_basis(3, nodes)
    gram = (basis * weights[:, None]).T @ basis
    assert (gram - torch.eye(16, dtype=torch.float64)).abs().max().item() < 1e-13


def test_degree_zero_and_batch_dims() -> None:
    gen = torch.Generator().manual_seed(9)
    rotation = random_rotation(3)
    sh0 = torch.randn(10, 1, 3, generator=gen)
    assert torch.equal(rotate_sh(sh0, rotation), sh0)
    assert sh_rotation_matrices(rotation, 0) == []
    sh = torch.randn(2, 7, 9, 3, generator=gen, dtype=torch.float64)
    batched = rotate_sh(sh, rotation)
    assert batched.dtype == torch.float64
    assert torch.allclose(batched[1], rotate_sh(sh[1], rotation), atol=1e-14)


def test_improper_or_malformed_rotation_is_refused() -> None:
    with pytest.raises(ValueError, match="proper rotation"):
        rotate_sh(torch.zeros(3, 4, 3), torch.diag(torch.tensor([1.0, 1.0, -1.0])))
    with pytest.raises(ValueError, match="proper rotation"):
        sh_rotation_matrices(2 * torch.eye(3), 2)
    with pytest.raises(ValueError, match="shape"):
        sh_rotation_matrices(torch.eye(4), 2)
