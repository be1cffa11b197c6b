"""The synthetic orbit captures: what each label means, checked on the generated rows.

Independent oracles: plyfile reads the written PLY; geometry (plane fit, nearest
neighbours) is recomputed here from the rows themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData
from scipy.spatial import cKDTree

from gs_backend.synthetic.capture import SHAPES, Label, make_capture


@pytest.mark.parametrize("shape", SHAPES)
def test_every_kind_of_row_is_there(shape: str) -> None:
    capture = make_capture(shape, tool_count=2000, seed=4, halo_share=0.05,
                           floater_share=0.1, background_share=0.2)
    counts = np.bincount(capture.labels, minlength=5)
    assert abs(counts[Label.TOOL] - 2000) <= 100
    assert counts[Label.FLOOR] > 0
    assert counts[Label.HALO] == 100 and counts[Label.FLOATER] == 200
    assert counts[Label.BACKGROUND] == 400
    assert np.allclose(np.linalg.norm(capture.quats, axis=1), 1.0, atol=1e-5)
    assert (capture.scales > 0).all()
    assert ((capture.opacities > 0) & (capture.opacities < 1)).all()
    no_floor = make_capture(shape, tool_count=2000, seed=4, floor=False)
    assert not (no_floor.labels == Label.FLOOR).any()


def test_table_touches_the_tool_from_below() -> None:
    capture = make_capture("grasper", tool_count=3000, seed=5)
    table = capture.means[capture.labels == Label.FLOOR].astype(np.float64)
    centre = table.mean(axis=0)
    normal = np.linalg.svd(table - centre)[2][2]
    height = (capture.means[capture.labels == Label.TOOL] - centre) @ normal
    height *= np.sign(np.median(height))
    assert (height > -0.005 * capture.tool_length).all()
    assert height.min() < 0.005 * capture.tool_length  # it rests on the table


def test_floaters_are_in_free_space_and_halos_wrap_the_tool() -> None:
    capture = make_capture("hook", tool_count=3000, seed=6, floater_share=0.2)
    tool = capture.labels == Label.TOOL
    tree = cKDTree(capture.means[tool])
    tool_size = capture.scales[tool].max(axis=1)
    floaters = capture.labels == Label.FLOATER
    clearance = tree.query(capture.means[floaters])[0]
    assert (clearance > 2.0 * capture.scales[floaters].max(axis=1)).all()
    assert (clearance < capture.tool_length).all()  # near the tool
    halos = capture.labels == Label.HALO
    _, nearest = tree.query(capture.means[halos])
    ratio = capture.scales[halos].max(axis=1) / tool_size[nearest]
    assert np.quantile(ratio, 0.1) >= 2.0
    assert (capture.opacities[halos] <= 0.15 + 1e-6).all()


def test_scale_parameter_scales_everything() -> None:
    a = make_capture("curved", tool_count=1000, seed=8, scale=1.0)
    b = make_capture("curved", tool_count=1000, seed=8, scale=1000.0)
    assert np.allclose(b.means, 1000.0 * a.means.astype(np.float64), rtol=1e-5, atol=1e-3)
    assert np.allclose(b.scales, 1000.0 * a.scales.astype(np.float64), rtol=1e-5)
    assert b.tool_length == pytest.approx(1000.0 * a.tool_length)


def test_saved_as_inria_ply(tmp_path: Path) -> None:
    capture = make_capture("needle_driver", tool_count=1000, seed=9, sh_degree=3)
    assert capture.sh.shape == (capture.count, 16, 3)
    assert not capture.sh[capture.labels != Label.TOOL, 1:].any()
    assert capture.sh[capture.labels == Label.TOOL, 1:].any()  # the needle driver's shine
    path = tmp_path / "capture.ply"
    capture.save(path)
    vertex = PlyData.read(str(path))["vertex"]
    assert vertex.count == capture.count
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1)
    assert np.array_equal(xyz, capture.means)
    assert np.allclose(np.exp(vertex["scale_0"]), capture.scales[:, 0], rtol=1e-5)


def test_capture_around_keeps_the_instrument_rows_and_extracts_back() -> None:
    """A given instrument wrapped in table, room, floaters and halos, in its own frame:
    its rows come first and unchanged, and the automatic extraction finds them."""
    from gs_backend.extract.auto import auto_extract
    from gs_backend.synthetic.capture import capture_around
    from gs_backend.synthetic.instrument import make_needle_driver

    g = make_needle_driver(6000, seed=3)
    arrays = [t.numpy() for t in (g.means, g.quats, g.scales, g.opacities, g.sh)]
    capture = capture_around(*arrays, seed=7)
    m = g.count
    for mine, given in zip((capture.means, capture.quats, capture.scales, capture.opacities,
                            capture.sh), arrays, strict=True):
        np.testing.assert_array_equal(mine[:m], given)
    assert (capture.labels[:m] == Label.TOOL).all()
    assert set(np.unique(capture.labels[m:])) == {Label.FLOOR, Label.BACKGROUND,
                                                   Label.FLOATER, Label.HALO}
    # the table is under the tool: in the tool's frame it is a plane the tool touches
    floor = capture.means[capture.labels == Label.FLOOR].astype(np.float64)
    centre = floor.mean(axis=0)
    normal = np.linalg.svd(floor - centre)[2][-1]
    heights = (capture.means[:m] - centre) @ normal
    tolerance = 0.01 * np.ptp(heights)  # the table is noisy; the tool rests on it
    assert heights.max() <= tolerance or heights.min() >= -tolerance  # all on one side
    assert min(np.abs(heights)) <= tolerance  # and touching it

    result = auto_extract(capture.means, capture.scales, capture.opacities,
                          np.ones(capture.count, dtype=bool))
    tool = capture.labels == Label.TOOL
    true_positive = int((result.keep & tool).sum())
    assert true_positive / result.keep.sum() >= 0.99 and true_positive / m >= 0.99
