"""The automatic instrument extraction on synthetic orbit captures with known membership.

Figures asserted per capture (DESIGN.md targets): precision and recall of the tool rows
>= 0.99, halo rows kept <= 10 %.

Guard against over-fitting. The method's ratios were tuned while looking at captures of
the shapes ``needle_driver``, ``grasper``, ``hook`` and ``curved`` with capture seeds 0-39
and parameters drawn from ``default_rng(5000 + seed)``. Here, parameters are drawn from
``default_rng(seed)`` (never used while tuning); the "tuning shapes" test uses capture
seeds 0-3, and the held-out test uses capture seeds 1000-1003, never seen while tuning,
on every shape including ``fenestrated`` (jaws of thin wire loops), which was written
after the tuning and first run by this test.

Every capture has a random rotation, a translation of up to 20 tool lengths and a global
scale from about 3e-4 to 3e2 (six orders of magnitude); three in four rest on a table of
one of five densities (0.02 to 1 times the tool's); all have floaters near the tool,
halos and a far room; half have sparse thin parts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gs_backend.extract.auto import auto_extract
from gs_backend.synthetic.capture import (
    SHAPES,
    Capture,
    Label,
    extraction_figures,
    make_capture,
    sweep_params,
)

TUNED_SHAPES = ("needle_driver", "grasper", "hook", "curved")
HELD_OUT_SHAPE = "fenestrated"


def _extract(capture: Capture) -> np.ndarray:
    return auto_extract(capture.means, capture.scales, capture.opacities,
                        np.ones(capture.count, dtype=bool)).keep


def _assert_figures(shape: str, seed: int) -> None:
    params = sweep_params(seed)
    capture = make_capture(shape, **params)
    precision, recall, halo = extraction_figures(capture.labels, _extract(capture))
    where = f"{shape} {params}"
    assert precision >= 0.99, f"precision {precision:.4f}: {where}"
    assert recall >= 0.99, f"recall {recall:.4f}: {where}"
    assert halo <= 0.10, f"halo kept {halo:.3f}: {where}"


@pytest.mark.parametrize("shape", TUNED_SHAPES)
def test_figures_on_tuning_shapes(shape: str) -> None:
    for seed in range(4):
        _assert_figures(shape, seed)


@pytest.mark.parametrize("shape", SHAPES)
def test_figures_on_held_out_captures(shape: str) -> None:
    assert HELD_OUT_SHAPE in SHAPES
    for seed in range(1000, 1004):
        _assert_figures(shape, seed)


def test_same_answer_in_any_units_and_axes() -> None:
    """Scale- and axis-free: a similarity applied to the capture changes nothing (up to
    a few rows at thresholds, from float32 rounding)."""
    capture = make_capture("hook", tool_count=3000, seed=7, scale=1.0)
    keep = _extract(capture)
    angle = 1.1
    rotation = np.array([[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0],
                         [-np.sin(angle), 0.0, np.cos(angle)]])
    for factor in (1e-3, 1e3):
        means = (factor * capture.means.astype(np.float64) @ rotation.T + [5.0, -3.0, 2.0])
        moved = auto_extract(means.astype(np.float32), capture.scales * np.float32(factor),
                             capture.opacities, np.ones(capture.count, dtype=bool)).keep
        assert (moved != keep).sum() <= 0.001 * capture.count


def test_reports_account_for_every_row_and_serialise() -> None:
    capture = make_capture("grasper", tool_count=3000, seed=3, floater_share=0.1)
    candidates = np.ones(capture.count, dtype=bool)
    candidates[::7] = False  # e.g. cropped away
    result = auto_extract(capture.means, capture.scales, capture.opacities, candidates)
    assert not result.keep[~candidates].any()
    assert [s.name for s in result.stages] == [
        "auto.distance", "auto.floor", "auto.halo", "auto.components"]
    assert sum(s.removed for s in result.stages) == candidates.sum() - result.keep.sum()
    assert all(s.removed > 0 for s in result.stages)  # this capture has all four kinds
    json.dumps([{"name": s.name, "removed": s.removed, "params": s.params}
                for s in result.stages])
    again = auto_extract(capture.means, capture.scales, capture.opacities, candidates)
    assert np.array_equal(again.keep, result.keep)


def test_floor_found_only_when_there_is_one() -> None:
    for floor in (True, False):
        capture = make_capture("needle_driver", tool_count=3000, seed=11, floor=floor)
        stages = auto_extract(capture.means, capture.scales, capture.opacities,
                              np.ones(capture.count, dtype=bool)).stages
        report = next(s for s in stages if s.name == "auto.floor")
        assert report.params["found"] is floor
        if floor:
            # The plane found is the table's: its normal is the table rows' normal.
            table = capture.means[capture.labels == Label.FLOOR].astype(np.float64)
            normal = np.linalg.svd(table - table.mean(axis=0))[2][2]
            assert abs(float(np.dot(normal, report.params["normal"]))) > 0.999


def test_few_or_no_candidates() -> None:
    capture = make_capture("hook", tool_count=3000, seed=2)
    none = auto_extract(capture.means, capture.scales, capture.opacities,
                        np.zeros(capture.count, dtype=bool))
    assert not none.keep.any()
    few = np.zeros(capture.count, dtype=bool)
    few[:5] = True
    assert np.array_equal(auto_extract(capture.means, capture.scales, capture.opacities,
                                       few).keep, few)
