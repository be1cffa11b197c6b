"""antimatter15 ``.splat``: a headerless array of 32-byte Gaussians, SH degree 0.

Row layout (little-endian): float32 x y z; float32 linear scales sx sy sz; uint8 r g b a;
uint8 quaternion w x y z. Writers store ``byte = trunc(255 * clamp(v, 0, 1))`` for the
DC colour ``v = 0.5 + C0 * f_dc`` and for the opacity, and
``byte = trunc(128 * q / |q| + 128)`` clamped to [0, 255] for each quaternion component.

Decoding follows the antimatter15 viewer: ``f_dc = (byte / 255 - 0.5) / C0``,
``opacity = a / 255`` and ``q = (byte - 128) / 128`` (not normalised here).
With truncating writers, colour and opacity lie in ``[byte, byte + 1) / 255`` (a bias of
up to 1/255 downwards) and each quaternion component in ``[byte - 128, byte - 127) / 128``.
The opacity is clamped into [2^-126, 1 - 2^-24] so that a later logit stays finite:
``a = 0`` becomes 2^-126 (invisible: the rasterizer skips alpha < 1/255), ``a = 255``
becomes 1 - 2^-24.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gs_contract.errors import InputError
from gs_contract.splats.data import SH_C0, SplatData, clamp_opacities

SPLAT_ROW = np.dtype([
    ("position", "<f4", (3,)),
    ("scale", "<f4", (3,)),
    ("rgba", "u1", (4,)),
    ("rotation", "u1", (4,)),
])


def is_splat_path(path: str | Path) -> bool:
    """True for a ``.splat`` file name (the format has no magic bytes to sniff)."""
    return Path(path).suffix.lower() == ".splat"


def read_splat(data: bytes, source: str | Path) -> SplatData:
    """Decode every row of a ``.splat`` file (``finite``: position and scale finite).

    Raises:
        InputError: when the size is not a multiple of 32 bytes.
    """
    size = len(data)
    row = SPLAT_ROW.itemsize
    if size % row:
        raise InputError(source, None, f"a .splat file holds {row}-byte rows, "
                         f"but its size ({size} bytes) is not a multiple of "
                         f"{row}: {size // row} rows and {size % row} stray bytes")
    rows = np.frombuffer(data, dtype=SPLAT_ROW)
    n = rows.shape[0]
    means = rows["position"].astype(np.float32)
    scales = rows["scale"].astype(np.float32)
    rgba = rows["rgba"].astype(np.float64) / 255.0
    quats = (rows["rotation"].astype(np.float64) - 128.0) / 128.0
    finite = np.isfinite(means).all(axis=1) & np.isfinite(scales).all(axis=1)
    return SplatData(
        path=str(source), format="splat",
        means=means, quats=quats.astype(np.float32), scales=scales,
        opacities=clamp_opacities(rgba[:, 3]),
        sh=((rgba[:, :3] - 0.5) / SH_C0).astype(np.float32).reshape(n, 1, 3),
        sh_degree=0, finite=finite, encoding="binary_little_endian",
    )
