"""The CPU rasterizers (numba and torch) against the brute-force reference and closed forms.

Every image test runs once per CPU backend (the ``backend`` fixture): both must
render what the reference renders, within the same tolerances.
"""

from __future__ import annotations

import math

import pytest
import torch

from gs_backend.raster import (
    ConcreteBackend,
    RasterResult,
    project_gaussians,
    rasterize,
    resolve_backend,
)
from gs_backend.raster.torch_tiles import bin_gaussians, composite_tiles, rasterize_projected
from tests.raster_reference import Scene, random_scene, reference_rasterize

TOLERANCE = 1e-4
MAX_AMBIGUOUS_FRACTION = 0.01


@pytest.fixture(params=["numba", "torch"])
def backend(request: pytest.FixtureRequest) -> ConcreteBackend:
    """The CPU rasterizer under test."""
    return request.param


def assert_matches_reference(
    scene: Scene,
    backend: ConcreteBackend,
    *,
    background: torch.Tensor | None = None,
    antialiased: bool = False,
    near: float = 0.01,
    far: float = 1e10,
    max_ambiguous: float = MAX_AMBIGUOUS_FRACTION,
) -> RasterResult:
    """Render with ``backend``; compare colours, alphas and expected depth."""
    result = rasterize(*scene, background=background, near=near, far=far,
                       antialiased=antialiased, with_depth=True, backend=backend)
    ref = reference_rasterize(*scene, background=background, near=near, far=far,
                              antialiased=antialiased)
    assert result.colors.shape == (scene.height, scene.width, scene.colors.shape[1])
    assert result.alphas.shape == result.depth.shape == (scene.height, scene.width)
    assert result.colors.dtype == result.alphas.dtype == result.depth.dtype == torch.float32
    # Pixels where a skip/stop decision sits within float rounding of its threshold
    # may legitimately differ (see tests/raster_reference.py); they must be rare.
    ambiguous_fraction = ref.ambiguous.float().mean().item()
    assert ambiguous_fraction <= max_ambiguous
    clear = ~ref.ambiguous
    for name, got, want in (("colors", result.colors, ref.colors),
                            ("alphas", result.alphas, ref.alphas),
                            ("depth", result.depth, ref.depth)):
        error = (got - want).abs()[clear].max().item()
        assert error <= TOLERANCE, f"{name}: max abs error {error:.3g}"
    return result


@pytest.mark.parametrize(
    ("seed", "channels", "width", "height", "antialiased"),
    [
        (0, 3, 100, 70, False),
        (1, 1, 64, 48, False),
        (2, 5, 77, 53, True),
        (3, 8, 50, 90, False),
        (4, 3, 81, 37, True),
        (5, 5, 64, 48, False),
        (6, 5, 160, 120, False),
        (7, 1, 97, 61, True),
        (8, 8, 66, 66, True),
        (9, 3, 123, 45, False),
    ],
)
def test_random_scenes_match_reference(seed: int, channels: int, width: int, height: int,
                                       antialiased: bool, backend: ConcreteBackend) -> None:
    scene = random_scene(seed, channels=channels, width=width, height=height)
    background = torch.rand(channels, generator=torch.Generator().manual_seed(seed))
    result = assert_matches_reference(scene, backend, background=background,
                                      antialiased=antialiased)
    # The scene is neither empty nor trivially opaque.
    assert 0.05 < result.alphas.mean().item() < 0.999
    assert (result.alphas == 0).any() or (result.alphas < 0.5).any()


def test_without_background_and_with_custom_near_far(backend: ConcreteBackend) -> None:
    scene = random_scene(10, channels=4, width=72, height=56, near=0.4)
    assert_matches_reference(scene, backend, near=0.4, far=2.5)
    # The planes really cut: a different near/far gives a different image.
    full = rasterize(*scene, backend=backend)
    cut = rasterize(*scene, near=0.4, far=2.5, backend=backend)
    assert (full.alphas - cut.alphas).abs().max() > 0.1


def test_saturated_layers_stop_before_transmittance_reaches_1e4(backend: ConcreteBackend) -> None:
    """Opaque screen-filling layers: the early stop decides the image."""
    width, height, layers = 40, 30, 8
    f, cx, cy = 50.0, 20.5, 15.5  # the principal point is the centre of pixel (20, 15)
    depths = torch.linspace(1.0, 2.0, layers)
    means = torch.stack((torch.zeros(layers), torch.zeros(layers), depths), dim=-1)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(layers, 1)
    scales = (2.0 * depths)[:, None].repeat(1, 3)  # ~100 px std on screen
    opacities = torch.full((layers,), 0.95)
    colors = torch.eye(layers)[:, :4]  # layer k lights channel k (k < 4)
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    scene = Scene(means, quats, scales, opacities, colors, torch.eye(4), K, width, height)
    background = torch.full((4,), 0.5)
    result = assert_matches_reference(scene, backend, background=background)

    # At the centre pixel sigma = 0, so alpha = 0.95 for every layer: T goes
    # 1, 0.05, 0.0025, 1.25e-4, and the 4th layer would take it to 6.25e-6 <= 1e-4,
    # so the pixel stops after three layers.
    t_final = 0.05**3
    expected = torch.tensor([0.95, 0.05 * 0.95, 0.05**2 * 0.95, 0.0]) + t_final * 0.5
    torch.testing.assert_close(result.colors[15, 20], expected, atol=1e-5, rtol=0)
    assert result.alphas[15, 20].item() == pytest.approx(1.0 - t_final, abs=1e-6)
    # The stop leaves T above 1e-4 everywhere, and deeper layers never show.
    assert result.alphas.max().item() < 1.0 - 1e-4
    assert result.colors[..., 3].max().item() <= 0.5 * (1.0 - result.alphas.min().item()) + 1e-6


def test_opacity_above_max_alpha_is_clamped(backend: ConcreteBackend) -> None:
    f, cx, cy = 50.0, 10.5, 8.5
    means = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2, 1)
    scales = torch.full((2, 3), 1.0)
    opacities = torch.tensor([0.9999, 0.9999])
    colors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    result = rasterize(means, quats, scales, opacities, colors, torch.eye(4), K, 20, 16,
                       backend=backend)
    # alpha = min(0.999, 0.9999): T = 0.001 after the first; the second would take it to
    # 1e-6, so it is never composited.
    torch.testing.assert_close(result.colors[8, 10], torch.tensor([0.999, 0.0]), atol=1e-6,
                               rtol=0)
    assert result.alphas[8, 10].item() == pytest.approx(0.999, abs=1e-6)


def test_long_tile_lists_over_many_steps(backend: ConcreteBackend) -> None:
    """Hundreds of faint layers per tile: lists span many chunks and windows."""
    width, height, layers = 24, 20, 600
    gen = torch.Generator().manual_seed(7)
    depths = 1.0 + torch.rand(layers, generator=gen)
    means = torch.cat((0.1 * torch.randn(layers, 2, generator=gen) * depths[:, None],
                       depths[:, None]), dim=-1)
    quats = torch.nn.functional.normalize(torch.randn(layers, 4, generator=gen), dim=-1)
    scales = 0.5 + 0.5 * torch.rand(layers, 3, generator=gen)
    opacities = 0.01 + 0.03 * torch.rand(layers, generator=gen)
    colors = torch.rand(layers, 3, generator=gen)
    K = torch.tensor([[30.0, 0.0, 12.0], [0.0, 30.0, 10.0], [0.0, 0.0, 1.0]])
    scene = Scene(means, quats, scales, opacities, colors, torch.eye(4), K, width, height)
    # The stop test's rounding band is crossed in small steps (alpha ~ 0.03), and the
    # noise bound adds up over hundreds of layers: more pixels are ambiguous here.
    result = assert_matches_reference(scene, backend, background=torch.tensor([0.2, 0.4, 0.6]),
                                      max_ambiguous=0.05)
    # Most pixels stop (T ends in (1e-4, 1.04e-4]) after hundreds of Gaussians.
    assert (result.alphas > 0.9998).float().mean().item() > 0.5


def test_equal_depths_composite_in_index_order(backend: ConcreteBackend) -> None:
    f, cx, cy = 40.0, 8.5, 6.5
    means = torch.tensor([[0.0, 0.0, 1.5], [0.0, 0.0, 1.5]])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(2, 1)
    scales = torch.full((2, 3), 0.3)
    opacities = torch.tensor([0.5, 0.5])
    colors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    for first in (0, 1):
        order = [first, 1 - first]
        result = rasterize(means[order], quats, scales, opacities, colors[order], torch.eye(4),
                           K, 17, 13, backend=backend)
        # At the centre pixel: the lower index is in front, 0.5 c_first + 0.25 c_second.
        expected = 0.5 * colors[first] + 0.25 * colors[1 - first]
        torch.testing.assert_close(result.colors[6, 8], expected, atol=1e-6, rtol=0)


def isotropic_gaussian(depth: float, scale: float, opacity: float, f: float, cx: float,
                       cy: float, *, x: float = 0.0, y: float = 0.0) -> tuple:
    means = torch.tensor([[x, y, depth]])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    scales = torch.full((1, 3), scale)
    opacities = torch.tensor([opacity])
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    return means, quats, scales, opacities, K


@pytest.mark.parametrize("antialiased", [False, True])
def test_single_gaussian_closed_form(antialiased: bool, backend: ConcreteBackend) -> None:
    width, height, f, cx, cy = 41, 33, 60.0, 20.5, 16.5
    depth, scale, opacity = 2.0, 0.08, 0.8
    means, quats, scales, opacities, K = isotropic_gaussian(depth, scale, opacity, f, cx, cy)
    color, background = torch.tensor([[0.9, 0.2, 0.4]]), torch.tensor([0.1, 0.1, 0.3])
    result = rasterize(means, quats, scales, opacities, color, torch.eye(4), K, width, height,
                       background=background, antialiased=antialiased, with_depth=True,
                       backend=backend)

    # On the optical axis the Jacobian is diag(f/z): the 2D covariance is
    # (f s / z)^2 + 0.3 on the diagonal.
    var_orig = (f * scale / depth) ** 2
    var = var_orig + 0.3
    if antialiased:  # sqrt(det_orig / det) for an isotropic covariance
        opacity *= var_orig / var
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    r2 = ((xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2).double()
    alpha = opacity * torch.exp(-0.5 * r2 / var)
    alpha = torch.where(alpha >= 1 / 255, alpha, 0.0)
    decisive = (alpha - 1 / 255).abs() > 1e-6  # leave out pixels at the threshold itself
    want_colors = alpha[..., None] * color[0].double() + (1 - alpha[..., None]) * background
    assert decisive.float().mean() > 0.99
    torch.testing.assert_close(result.alphas[decisive].double(), alpha[decisive], atol=2e-6,
                               rtol=0)
    torch.testing.assert_close(result.colors[decisive].double(), want_colors[decisive],
                               atol=2e-6, rtol=0)
    hit = alpha > 0
    torch.testing.assert_close(result.depth[hit], torch.full_like(result.depth[hit], depth))
    assert (result.depth[~hit] == 0).all()
    assert (result.colors[~hit] == background).all()


def test_jacobian_clamp_closed_form(backend: ConcreteBackend) -> None:
    """A large Gaussian far right of the view: its Jacobian uses the clamped x/z."""
    width, height, f, cx, cy = 40, 30, 40.0, 20.5, 15.5
    depth, scale, opacity, x_over_z = 2.0, 1.5, 0.9, 1.6
    means, quats, scales, opacities, K = isotropic_gaussian(
        depth, scale, opacity, f, cx, cy, x=x_over_z * depth)
    color = torch.tensor([[1.0]])
    result = rasterize(means, quats, scales, opacities, color, torch.eye(4), K, width, height,
                       backend=backend)

    limit = (width - cx) / f + 0.15 * width / f  # x/z is clamped to this
    assert x_over_z > limit
    jac = torch.tensor([[f / depth, 0.0, -f * limit / depth], [0.0, f / depth, 0.0]],
                       dtype=torch.float64)
    cov = scale**2 * jac @ jac.T + 0.3 * torch.eye(2, dtype=torch.float64)
    mean = torch.tensor([f * x_over_z + cx, cy], dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    d = torch.stack((xs + 0.5, ys + 0.5), dim=-1).double() - mean
    sigma = 0.5 * torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov), d)
    alpha = opacity * torch.exp(-sigma)
    alpha = torch.where(alpha >= 1 / 255, alpha, 0.0)
    assert alpha.max() > 0.1  # it does reach into the image
    torch.testing.assert_close(result.alphas.double(), alpha, atol=2e-6, rtol=0)


def test_nothing_visible_renders_the_background(backend: ConcreteBackend) -> None:
    background = torch.tensor([0.25, 0.5, 0.75, 0.0])
    K = torch.tensor([[30.0, 0.0, 16.0], [0.0, 30.0, 12.0], [0.0, 0.0, 1.0]])
    behind = torch.tensor([[0.0, 0.0, -1.0], [0.1, 0.0, -2.0]])
    for means in (behind, torch.zeros(0, 3)):
        n = means.shape[0]
        result = rasterize(means, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                           torch.full((n, 3), 0.1), torch.full((n,), 0.9), torch.ones(n, 4),
                           torch.eye(4), K, 32, 24, background=background, with_depth=True,
                           backend=backend)
        assert (result.colors == background).all()
        assert (result.alphas == 0).all() and (result.depth == 0).all()


@pytest.mark.parametrize("seed", [20, 21])
def test_tile_size_and_culling_do_not_change_the_image(seed: int) -> None:
    """8x8 tiles with ellipse culling render what gsplat's 16x16 box binning renders."""
    scene = random_scene(seed, channels=4, width=70, height=50)
    projected = project_gaussians(*scene[:4], scene.viewmat, scene.K, scene.width, scene.height,
                                  near=0.01, far=1e10, eps2d=0.3, antialiased=False)
    order = torch.sort(projected.depths, stable=True).indices
    arrays = (projected.means2d[order], projected.radii[order], projected.conic_roots[order],
              projected.opacities[order])
    features = scene.colors[projected.ids[order]]
    images, pairs = {}, {}
    for tile_size in (16, 8, 4):
        for cull in (False, True):
            bins = bin_gaussians(*arrays, scene.width, scene.height, tile_size,
                                 cull_to_ellipse=cull)
            pairs[tile_size, cull] = int(bins.offsets[-1])
            images[tile_size, cull] = composite_tiles(
                bins, arrays[0], arrays[2], arrays[3], features, scene.width, scene.height,
                chunk=16)
        assert pairs[tile_size, True] < 0.9 * pairs[tile_size, False]  # culling does cull
    for key, (image, trans) in images.items():
        torch.testing.assert_close(image, images[16, False][0], atol=1e-6, rtol=0, msg=str(key))
        torch.testing.assert_close(trans, images[16, False][1], atol=1e-6, rtol=0, msg=str(key))
    # rasterize_projected's own tile size and chunk change nothing either.
    a = rasterize_projected(projected, scene.colors, scene.width, scene.height, background=None,
                            with_depth=False, tile_size=16, chunk=8)
    b = rasterize_projected(projected, scene.colors, scene.width, scene.height, background=None,
                            with_depth=False)
    torch.testing.assert_close(a.colors, b.colors, atol=1e-6, rtol=0)


def test_projection_agrees_with_gsplat_torch_impl() -> None:
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    scene = random_scene(30, count=400, extreme_shapes=False)
    projected = project_gaussians(*scene[:4], scene.viewmat, scene.K, scene.width, scene.height,
                                  near=0.01, far=1e10, eps2d=0.3, antialiased=True)
    double = [t.double() for t in scene[:4]]
    covars, _ = _quat_scale_to_covar_preci(double[1], double[2], True, False)
    radii, means2d, depths, conics, compensation = _fully_fused_projection(
        double[0], covars, scene.viewmat.double()[None], scene.K.double()[None], scene.width,
        scene.height, calc_compensations=True)
    kept = projected.ids
    assert 50 < kept.numel() < 400
    # Everything we keep, gsplat's looser 3.33-sigma culling keeps too.
    assert (radii[0, kept] > 0).all()
    assert (projected.radii <= radii[0, kept]).all()
    torch.testing.assert_close(projected.means2d.double(), means2d[0, kept], atol=1e-3, rtol=1e-6)
    torch.testing.assert_close(projected.depths.double(), depths[0, kept], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(projected.conics.double(), conics[0, kept], atol=1e-9, rtol=1e-4)
    torch.testing.assert_close(projected.opacities.double(),
                               double[3][kept] * compensation[0, kept], atol=1e-7, rtol=1e-4)
    # The roots reproduce the conic: (p dx + q dy)^2 + (r dy)^2 = d^T conic d.
    p, q, r = projected.conic_roots.double().unbind(-1)
    a, b, c = projected.conics.double().unbind(-1)
    torch.testing.assert_close(torch.stack((p * p, p * q, q * q + r * r), -1),
                               torch.stack((a, b, c), -1), atol=1e-9, rtol=1e-5)
    # Dropped ones could not reach any pixel: too faint, or their opacity-aware box
    # (extend = min(3.33, sqrt(2 ln(255 o))) standard deviations) misses the image.
    dropped = torch.ones(400, dtype=torch.bool)
    dropped[kept] = False
    opacity = double[3] * compensation[0]
    faint = opacity < 1 / 255
    extend = torch.sqrt(2 * torch.log((opacity * 255).clamp(min=1))).clamp(max=3.33)
    a, b, c = conics[0].unbind(-1)
    blurred_var = torch.stack((c, a), dim=-1) / (a * c - b * b)[:, None]  # inverse of the conic
    reach = extend[:, None] * torch.sqrt(blurred_var) - 1e-3
    size = torch.tensor([scene.width, scene.height], dtype=torch.float64)
    off_image = ((means2d[0] + reach <= 0) | (means2d[0] - reach >= size)).any(-1)
    in_view = dropped & (radii[0] > 0).all(-1)
    assert in_view.any()
    assert (off_image | faint)[in_view].all()


def test_backend_choice() -> None:
    assert resolve_backend("auto", torch.device("cpu")) == "numba"
    assert resolve_backend("auto", torch.device("mps")) == "torch"
    assert resolve_backend("torch", torch.device("cpu")) == "torch"
    assert resolve_backend("numba", torch.device("cpu")) == "numba"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_backend("gsplat", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown"):
        resolve_backend("opengl", torch.device("cpu"))  # type: ignore[arg-type]
    scene = random_scene(40, count=10, width=16, height=16)
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(*scene, backend="gsplat")


def test_inputs_are_checked() -> None:
    scene = random_scene(41, count=5, width=16, height=16)
    with pytest.raises(ValueError, match="quats"):
        rasterize(scene.means, scene.quats[:, :3], *scene[2:])
    with pytest.raises(ValueError, match="colors"):
        rasterize(*scene[:4], scene.colors[:4], *scene[5:])
    with pytest.raises(ValueError, match="background"):
        rasterize(*scene, background=torch.zeros(7))
    with pytest.raises(ValueError, match="near"):
        rasterize(*scene, near=0.0)


def test_float64_inputs_render_like_float32(backend: ConcreteBackend) -> None:
    scene = random_scene(42, count=100, width=40, height=30)
    as_double = Scene(*(t.double() if isinstance(t, torch.Tensor) else t for t in scene))
    a = rasterize(*scene, with_depth=True, backend=backend)
    b = rasterize(*as_double, with_depth=True, backend=backend)
    assert b.colors.dtype == torch.float32
    assert torch.equal(a.colors, b.colors) and torch.equal(a.alphas, b.alphas)
    assert math.isfinite(b.depth.sum().item())
