"""Properties of the compiled CPU rasterizer beyond the reference comparison
(tests/test_raster_reference.py runs every image test on it too)."""

from __future__ import annotations

from pathlib import Path

import torch

from gs_backend.raster import rasterize
from gs_backend.raster.numba_cache import writable_folder
from gs_backend.raster.numba_tiles import rasterize_numba, rasterize_numba_with_stats
from tests.raster_reference import random_scene

OPTIONS = dict(background=None, near=0.01, far=1e10, eps2d=0.3, antialiased=False,
               with_depth=True)


def test_tile_size_and_thread_count_do_not_change_the_image() -> None:
    """Tiles are independent: any tile size, any thread count, the same bits."""
    scene = random_scene(50, channels=4, width=90, height=61)
    base = rasterize_numba(*scene, **OPTIONS, tile_size=8, threads=1)
    for tile_size in (4, 8, 16):
        for threads in (1, 2):
            other = rasterize_numba(*scene, **OPTIONS, tile_size=tile_size, threads=threads)
            for name in ("colors", "alphas", "depth"):
                assert torch.equal(getattr(other, name), getattr(base, name)), \
                    (name, tile_size, threads)


def test_only_pixels_inside_the_ellipse_are_evaluated() -> None:
    """One Gaussian: the evaluated (pixel, Gaussian) pairs are the pixels where its
    alpha >= 1/255, counted independently in float64 (a few may sit on the edge)."""
    width, height, f, cx, cy = 64, 48, 60.0, 30.2, 25.7
    means = torch.tensor([[0.05, -0.02, 2.0]])
    quats = torch.nn.functional.normalize(torch.tensor([[0.9, 0.2, -0.3, 0.25]]), dim=-1)
    scales = torch.tensor([[0.15, 0.04, 0.02]])
    opacity = 0.7
    K = torch.tensor([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
    result, stats = rasterize_numba_with_stats(
        means, quats, scales, torch.tensor([opacity]), torch.ones(1, 3), torch.eye(4), K,
        width, height, **OPTIONS, tile_size=8)
    inside = int((result.alphas > 0).sum())
    assert stats.visible == 1 and stats.contributed == inside
    assert inside > 100  # an elongated ellipse, far smaller than its 8x8-tile box
    assert stats.evaluated - stats.contributed <= 4
    # Whole 8-pixel vectors are computed: at least the evaluated pixels, at most
    # the rows it reaches times two 8-column groups per tile.
    assert stats.lanes % 8 == 0 and stats.evaluated <= stats.lanes <= stats.pairs * 64
    # The box of tiles it is listed in holds many more pixels than it shades.
    assert stats.pairs * 64 > 1.5 * inside


def test_stops_leave_pixels_unevaluated() -> None:
    """Opaque layers: once a pixel has stopped, deeper Gaussians are not evaluated there."""
    layers, width, height = 10, 16, 16
    means = torch.stack((torch.zeros(layers), torch.zeros(layers),
                         torch.linspace(1.0, 2.0, layers)), dim=-1)
    K = torch.tensor([[20.0, 0.0, 8.0], [0.0, 20.0, 8.0], [0.0, 0.0, 1.0]])
    _, stats = rasterize_numba_with_stats(
        means, torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(layers, 1),
        (20.0 * means[:, 2:]).repeat(1, 3), torch.full((layers,), 0.995),
        torch.rand(layers, 3), torch.eye(4), K, width, height, **OPTIONS)
    n_pix = width * height
    # ~400 px standard deviation, so alpha ~ 0.995 at every pixel: T = 0.005 after the
    # first layer, the second would take it to ~2.5e-5 <= 1e-4 -> one Gaussian
    # composited, the second evaluated and refused (the stop), the rest never evaluated.
    assert stats.contributed == n_pix
    assert stats.evaluated == 2 * n_pix


def test_auto_on_cpu_is_the_numba_path() -> None:
    scene = random_scene(51, channels=3, width=40, height=30)
    auto = rasterize(*scene, with_depth=True)
    numba = rasterize(*scene, with_depth=True, backend="numba")
    assert torch.equal(auto.colors, numba.colors) and torch.equal(auto.depth, numba.depth)


def test_cache_folder_choice(tmp_path: Path) -> None:
    """The kernels' cache goes to the first folder that takes a file."""
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert writable_folder([not_a_folder / "cache", tmp_path / "made" / "here"]) == \
        tmp_path / "made" / "here"
    assert (tmp_path / "made" / "here").is_dir()
    assert writable_folder([not_a_folder / "cache"]) is None


def test_dataset_rendered_with_numba_matches_torch(tmp_path: Path) -> None:
    """End to end through ``gs-backend render --rasterizer``: the two CPU rasterizers
    write the same images (within one level at rare threshold pixels) and labels."""
    import json

    import cv2
    import numpy as np

    from gs_backend.cli import main
    from tests.scenario_factory import write_scenario

    scenario = write_scenario(tmp_path)
    for rasterizer in ("numba", "torch"):
        assert main(["render", str(scenario), "--out", str(tmp_path / rasterizer), "--device",
                     "cpu", "--rasterizer", rasterizer, "--progress", "none"]) == 0
    manifests = [json.loads((tmp_path / r / "manifest.json").read_text())
                 for r in ("numba", "torch")]
    for ours, theirs in zip(manifests[0]["frames"], manifests[1]["frames"], strict=True):
        a = cv2.imread(str(tmp_path / "numba" / ours["image"])).astype(np.int16)
        b = cv2.imread(str(tmp_path / "torch" / theirs["image"])).astype(np.int16)
        assert (np.abs(a - b) > 1).mean() <= 0.001, ours["name"]
        masks = [cv2.imread(str(tmp_path / r / f["mask"]), cv2.IMREAD_UNCHANGED)
                 for r, f in (("numba", ours), ("torch", theirs))]
        assert masks[0].any() and (masks[0] != masks[1]).mean() <= 0.001, ours["name"]
        assert ([(i["id"], i["labelled"]) for i in ours["instances"]]
                == [(i["id"], i["labelled"]) for i in theirs["instances"]]), ours["name"]


def test_vectorised_exp_is_float32_accurate() -> None:
    """The compositing's branch-free exp against float64 numpy, over every power
    alpha can take (0 down to -87) and beyond: within 3 float32 ulps."""
    import numba
    import numpy as np

    from gs_backend.raster.numba_composite import exp_nonpositive

    @numba.njit
    def evaluate(x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = exp_nonpositive(x[i])
        return out

    x = np.concatenate((-np.geomspace(1e-8, 87.0, 200_001), [0.0, -0.5 * np.log(2.0)]))
    x = x.astype(np.float32)
    got = evaluate(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    assert np.isfinite(got).all()
    assert (np.abs(got - want) <= 3 * ulp).all(), float((np.abs(got - want) / ulp).max())
    assert evaluate(np.array([0.0], np.float32))[0] == 1.0
    assert 0.0 <= evaluate(np.array([-200.0], np.float32))[0] < 1e-37


def test_balanced_order_splits_work_evenly_into_numbas_blocks() -> None:
    """Tiles are ordered so that numba's contiguous per-thread blocks carry similar
    work: every tile once, each block heaviest first, loads within the largest cost."""
    from itertools import pairwise

    import numba
    import numpy as np

    from gs_backend.raster.numba_tiles import balanced_order

    rng = np.random.default_rng(3)
    costs = (rng.pareto(1.0, 1201) * 50).astype(np.int64)
    for threads in (1, 2, 3):
        order = balanced_order(costs, threads)
        assert sorted(order.tolist()) == list(range(costs.size))
        sizes = [costs.size // threads + (b < costs.size % threads) for b in range(threads)]
        bounds = np.cumsum([0, *sizes])
        loads = [costs[order[a:b]].sum() for a, b in pairwise(bounds)]
        assert max(loads) - min(loads) <= costs.max()
        for a, b in pairwise(bounds):
            assert (np.diff(costs[order[a:b]]) <= 0).all()

    @numba.njit(parallel=True)
    def thread_of_iteration(out: np.ndarray) -> None:
        for i in numba.prange(out.shape[0]):
            out[i] = numba.get_thread_id()

    # The premise: numba runs a prange as contiguous, equal blocks, one per thread.
    owner = np.zeros(1201, dtype=np.int64)
    thread_of_iteration(owner)
    assert (np.diff(owner) >= 0).all()
