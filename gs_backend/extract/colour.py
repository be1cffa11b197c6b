"""Colour keys: select Gaussians by their SH DC colour (the paper labels instrument
Gaussians by it).

A Gaussian's colour here is its *display DC colour* ``clip(0.5 + SH_C0 * f_dc, 0, 1)``
(:meth:`gs_contract.splats.SplatData.dc_colors`):
the view-independent part of its colour, in the same sRGB-encoded 0-1 values as the
training photos (3DGS fits the photos' pixel values directly). Colours are compared in
CIELAB (D65 white) with the CIE 1976 distance ``Delta E = |Lab_1 - Lab_2|``: in Lab equal
distances look roughly equally different, so one tolerance means the same thing for a
dark blue band as for a light grey shaft, which a distance in RGB does not give (RGB
crowds the dark colours together). ``Delta E`` about 2 is a just-noticeable difference;
a colour and its shaded or highlit version differ by 10-30, mostly in lightness ``L``.

A key is one or more colours, a tolerance and a mode: with ``keep`` a Gaussian passes
when its colour lies within the tolerance of any of the colours, with ``remove`` when it
lies within the tolerance of none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from gs_contract.errors import InputError

ColourMode = Literal["keep", "remove"]
COLOUR_MODES: tuple[str, ...] = get_args(ColourMode)
DEFAULT_TOLERANCE = 20.0  # Delta E (CIE 1976)

# sRGB (linear, D65) -> CIE XYZ, IEC 61966-2-1; and the D65 white point (Y = 1).
_RGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805],
                        [0.2126, 0.7152, 0.0722],
                        [0.0193, 0.1192, 0.9505]])
_WHITE_D65 = _RGB_TO_XYZ.sum(axis=1)  # XYZ of sRGB white, so white is L=100, a=b=0
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass(frozen=True, eq=False)
class ColourKey:
    """``colours``: ``[M, 3]`` float64 sRGB-encoded in [0, 1]; ``tolerance``: Delta E."""

    colours: np.ndarray
    tolerance: float = DEFAULT_TOLERANCE
    mode: ColourMode = "keep"

    def passes(self, dc_colours: np.ndarray) -> np.ndarray:
        """``[N]`` bool: which of the ``[N, 3]`` display DC colours pass the key."""
        near = nearest_key_distance(dc_colours, self.colours) <= self.tolerance
        return near if self.mode == "keep" else ~near

    def params(self) -> dict[str, Any]:
        """The key as the ``--json`` report shows it."""
        return {"colours": [[round(float(c), 6) for c in rgb] for rgb in self.colours],
                "tolerance": self.tolerance, "mode": self.mode,
                "distance": "CIE76 Delta E in CIELAB (D65)"}


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB ``[N, 3]`` (L in 0-100) of ``[N, 3]`` sRGB-encoded colours in [0, 1]."""
    c = np.asarray(rgb, dtype=np.float64)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]),
                     200 * (f[:, 1] - f[:, 2])], axis=1)


def nearest_key_distance(colours: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``[N]`` float64: Delta E (CIE 1976) from each ``[N, 3]`` colour to the nearest of
    the ``[M, 3]`` key colours (both sRGB-encoded in [0, 1])."""
    lab = srgb_to_lab(colours)
    best = np.full(lab.shape[0], np.inf)
    for key in srgb_to_lab(keys):
        best = np.minimum(best, np.linalg.norm(lab - key, axis=1))
    return best


def parse_colour(text: str, option: str = "--colour-key") -> tuple[float, float, float]:
    """An sRGB colour from ``R,G,B`` (each in [0, 1]) or ``#RRGGBB`` / ``RRGGBB`` hex.

    Raises:
        InputError: naming ``option`` for anything else.
    """
    m = _HEX.match(text.strip())
    if m:
        h = m.group(1)
        return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise InputError(option, None, f"expected R,G,B with each in 0-1 (e.g. 0.1,0.6,0.2) "
                                       f"or a hex colour such as '#1a9933', got {text!r}")
    return (values[0], values[1], values[2])


def colour_key_from_options(keys: list[str] | None, tolerance: float | None,
                            mode: str) -> ColourKey | None:
    """The key the command-line options describe, or None when no ``--colour-key`` is given.

    Raises:
        InputError: a bad colour, a tolerance that is not a positive finite number, or
            a tolerance / mode given without any key.
    """
    if not keys:
        if tolerance is not None:
            raise InputError("--colour-tolerance", None, "needs at least one --colour-key")
        return None
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise InputError("--colour-tolerance", None,
                         f"expected a positive Delta E such as 20, got {tolerance}")
    if mode not in COLOUR_MODES:
        raise InputError("--colour-mode", None, f"expected one of {', '.join(COLOUR_MODES)}, "
                                                f"got {mode!r}")
    colours = np.array([parse_colour(k) for k in keys], dtype=np.float64)
    return ColourKey(colours, float(tolerance), mode)  # type: ignore[arg-type]
