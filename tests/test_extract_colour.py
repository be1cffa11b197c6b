"""gs_backend.extract.colour: colour keys on the display DC colour, compared in CIELAB.

Oracle for the Lab conversion: OpenCV's ``COLOR_RGB2Lab`` on float32 images (sRGB with
its transfer curve, D65, L in 0-100), an independent implementation.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gs_backend.extract.colour import (
    ColourKey,
    colour_key_from_options,
    nearest_key_distance,
    parse_colour,
    srgb_to_lab,
)
from gs_contract.errors import InputError
from gs_contract.splats import SH_C0


def test_lab_matches_opencv() -> None:
    rgb = np.random.default_rng(0).uniform(0, 1, size=(2000, 3)).astype(np.float32)
    rgb[:4] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0.01, 0.02, 0.03]]  # incl. the linear toe
    ours = srgb_to_lab(rgb)
    theirs = cv2.cvtColor(rgb[None], cv2.COLOR_RGB2Lab)[0].astype(np.float64)
    np.testing.assert_allclose(ours, theirs, atol=0.5)  # OpenCV uses lookup tables


def test_known_lab_values() -> None:
    lab = srgb_to_lab(np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=1e-9)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)  # sRGB red


def test_nearest_of_several_keys() -> None:
    keys = np.array([[1.0, 0, 0], [0, 0, 1.0]])
    d = nearest_key_distance(np.array([[1.0, 0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]]), keys)
    assert d[0] == pytest.approx(0) and d[1] == pytest.approx(0)
    white, red, blue = srgb_to_lab(np.array([[1.0, 1, 1], [1, 0, 0], [0, 0, 1]]))
    assert d[2] == pytest.approx(min(np.linalg.norm(white - red), np.linalg.norm(white - blue)))


def _dc_of(rgb: np.ndarray) -> np.ndarray:
    """SH DC coefficients whose display colour is ``rgb``."""
    return (np.asarray(rgb, dtype=np.float64) - 0.5) / SH_C0


def test_keep_and_remove_modes_on_dc_colours() -> None:
    green = np.array([0.1, 0.6, 0.2])
    rng = np.random.default_rng(1)
    shaded = np.clip(green * rng.uniform(0.9, 1.1, size=(50, 1)), 0, 1)  # the band, lit
    grey = np.full((50, 3), 0.55) + rng.normal(0, 0.02, size=(50, 3))  # the shaft
    display = np.clip(0.5 + SH_C0 * _dc_of(np.concatenate([shaded, grey])), 0, 1)
    keep = ColourKey(green[None], 15.0, "keep").passes(display)
    assert keep[:50].all() and not keep[50:].any()
    remove = ColourKey(green[None], 15.0, "remove").passes(display)
    np.testing.assert_array_equal(remove, ~keep)


def test_tolerance_is_a_delta_e() -> None:
    key = np.array([[0.5, 0.5, 0.5]])
    probe = np.array([[0.5, 0.5, 0.5], [0.6, 0.5, 0.5]])
    d = float(np.linalg.norm(srgb_to_lab(probe[1:]) - srgb_to_lab(key)))
    assert ColourKey(key, d * 1.01).passes(probe).tolist() == [True, True]
    assert ColourKey(key, d * 0.99).passes(probe).tolist() == [True, False]


@pytest.mark.parametrize(("text", "rgb"), [
    ("1,0,0.5", (1.0, 0.0, 0.5)), ("#ff8000", (1.0, 128 / 255, 0.0)),
    ("FF8000", (1.0, 128 / 255, 0.0)), (" 0.2, 0.4 ,0.6 ", (0.2, 0.4, 0.6)),
])
def test_parse_colour(text: str, rgb: tuple[float, float, float]) -> None:
    assert parse_colour(text) == pytest.approx(rgb)


@pytest.mark.parametrize("text", ["1,0", "1,0,2", "red", "#ff80", "a,b,c", "nan,0,0", ""])
def test_bad_colours_name_the_option(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_colour(text)
    assert info.value.source == "--colour-key"


def test_options() -> None:
    assert colour_key_from_options(None, None, "keep") is None
    key = colour_key_from_options(["#ff0000", "0,0,1"], 12.5, "remove")
    assert key is not None and key.mode == "remove" and key.tolerance == 12.5
    np.testing.assert_allclose(key.colours, [[1, 0, 0], [0, 0, 1]])
    with pytest.raises(InputError, match="needs at least one --colour-key"):
        colour_key_from_options([], 10.0, "keep")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError) as info:
            colour_key_from_options(["1,0,0"], bad, "keep")
        assert info.value.source == "--colour-tolerance"
