"""Our SH evaluation against gsplat's pure-torch reference (an independent oracle)."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics

from gs_backend import sh as sh_module
from gs_backend.sh import eval_sh_colors, gaussian_colors, sh_basis


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eval_sh_colors_matches_gsplat(degree: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    n, k = 4096, (degree + 1) ** 2
    sh = torch.randn(n, k, 3, generator=gen)
    # Directions of any length, including axis-aligned ones.
    dirs = torch.randn(n, 3, generator=gen) * torch.rand(n, 1, generator=gen) * 10
    dirs[:6] = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -3.0]])
    expected = _spherical_harmonics(degree, dirs, sh)
    got = eval_sh_colors(sh, dirs)
    assert got.shape == (n, 3)
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("used_degree", [0, 1, 2])
def test_lower_degree_ignores_higher_bands_like_gsplat(used_degree: int) -> None:
    gen = torch.Generator().manual_seed(7)
    sh = torch.randn(512, 16, 3, generator=gen)
    dirs = torch.randn(512, 3, generator=gen)
    expected = _spherical_harmonics(used_degree, dirs, sh)
    got = eval_sh_colors(sh, dirs, degree=used_degree)
    assert (got - expected).abs().max().item() <= 1e-5
    # ...and the higher bands really were ignored, not merely small.
    assert not torch.allclose(got, eval_sh_colors(sh, dirs), atol=1e-3)


def test_eval_sh_colors_keeps_leading_batch_dims() -> None:
    gen = torch.Generator().manual_seed(3)
    sh = torch.randn(2, 5, 9, 3, generator=gen)
    dirs = torch.randn(2, 5, 3, generator=gen)
    got = eval_sh_colors(sh, dirs)
    assert got.shape == (2, 5, 3)
    expected = _spherical_harmonics(2, dirs, sh)
    assert (got - expected).abs().max().item() <= 1e-5


def test_degree_above_coefficients_is_refused() -> None:
    with pytest.raises(ValueError, match="degree"):
        eval_sh_colors(torch.zeros(4, 4, 3), torch.ones(4, 3), degree=2)
    with pytest.raises(ValueError, match="not supported"):
        sh_basis(4, torch.ones(1, 3))


def test_basis_is_orthonormal_on_the_sphere() -> None:
    """Independent of gsplat: a dense Fibonacci-lattice quadrature of Y_a Y_b."""
    n = 200_000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + 5**0.5) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)
    basis = sh_basis(3, dirs)  # [n, 16]
    gram = basis.T @ basis * (4 * math.pi / n)
    assert (gram - torch.eye(16, dtype=torch.float64)).abs().max().item() < 1e-3


@pytest.fixture(params=["numba", "torch"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which implementation colours float32 CPU tensors: the compiled loop (the default
    there) or the eager torch ops (what other devices run)."""
    if request.param == "torch":
        monkeypatch.setattr(sh_module, "_compiled_path", lambda *tensors: False)
    return request.param


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_gaussian_colors_match_gsplat_colour_formula(degree: int, path: str) -> None:
    gen = torch.Generator().manual_seed(11 + degree)
    n = 2048
    sh = torch.randn(n, 16, 3, generator=gen) * 0.6
    means = torch.randn(n, 3, generator=gen) * 3
    camera_center = torch.tensor([0.3, -1.2, -4.0])
    means[0] = camera_center  # a zero direction
    means[1] = camera_center + torch.tensor([0.0, 0.0, 1e-3])  # axis-aligned, short
    expected = torch.clamp_min(_spherical_harmonics(degree, means - camera_center, sh) + 0.5, 0.0)
    got = gaussian_colors(sh, means, camera_center, degree=degree)
    assert got.dtype == torch.float32 and got.shape == (n, 3)
    assert (got - expected).abs().max().item() <= 1e-5
    assert (got == 0).any()  # the clamp is exercised
    if degree == 3:
        assert torch.equal(gaussian_colors(sh, means, camera_center), got)


@pytest.mark.parametrize("degree", [1, 3])
def test_gaussian_colors_write_into_columns_of_a_wider_array(degree: int, path: str) -> None:
    """``out`` may be a strided view (the colour columns of a feature array); the other
    columns stay as they were."""
    gen = torch.Generator().manual_seed(21 + degree)
    n = 1000
    sh = torch.randn(n, (degree + 1) ** 2, 3, generator=gen)
    means = torch.randn(n, 3, generator=gen)
    camera_center = torch.tensor([1.0, 2.0, -3.0])
    features = torch.full((n + 10, 6), -7.0)
    view = features[4:4 + n, 1:4]
    assert gaussian_colors(sh, means, camera_center, out=view) is view
    expected = torch.clamp_min(_spherical_harmonics(degree, means - camera_center, sh) + 0.5, 0.0)
    assert (features[4:4 + n, 1:4] - expected).abs().max().item() <= 1e-5
    untouched = torch.ones_like(features, dtype=torch.bool)
    untouched[4:4 + n, 1:4] = False
    assert (features[untouched] == -7.0).all()


def test_compiled_path_takes_float32_cpu_tensors_only() -> None:
    sh, means = torch.zeros(4, 4, 3), torch.zeros(4, 3)
    assert sh_module._compiled_path(sh, means, None)
    assert not sh_module._compiled_path(sh.double(), means.double(), None)
    assert not sh_module._compiled_path(sh, means, torch.zeros(4, 3, dtype=torch.float64))


def test_unsupported_degrees_are_refused_on_every_path(path: str) -> None:
    with pytest.raises(ValueError, match="not supported"):
        gaussian_colors(torch.zeros(2, 25, 3), torch.ones(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="degree"):
        gaussian_colors(torch.zeros(2, 4, 3), torch.ones(2, 3), torch.zeros(3), degree=2)
