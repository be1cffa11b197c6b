"""antimatter15 ``.splat``: a headerless array of 32-byte Gaussians, SH degree 0.

Row layout (little-endian): float32 x y z; float32 linear scales sx sy sz; uint8 r g b a;
uint8 quaternion w x y z. Writers store ``byte = trunc(255 * clamp(v, 0, 1))`` for the
DC colour ``v = 0.5 + C0 * f_dc`` and for the opacity, and
``byte = trunc(128 * q / |q| + 128)`` clamped to [0, 255] for each quaternion component.

Decoding follows the antimatter15 viewer: ``f_dc = (byte / 255 - 0.5) / C0``,
``opacity = a / 255`` and ``q = (byte - 128) / 128`` (normalised later by the loader).
With truncating writers, colour and opacity lie in ``[byte, byte + 1) / 255`` (a bias of
up to 1/255 downwards) and each quaternion component in ``[byte - 128, byte - 127) / 128``.
The opacity is clamped into [2^-126, 1 - 2^-24] (the smallest normal float32 and the
largest float32 below 1) so that a later logit stays finite: ``a = 0`` becomes 2^-126
(invisible: the rasterizer skips alpha < 1/255), ``a = 255`` becomes 1 - 2^-24.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gs_backend.gaussians import SH_C0, Gaussians
from gs_backend.io.inria_ply import clamp_opacities
from gs_contract.errors import InputError

SPLAT_ROW_BYTES = 32
SPLAT_ROW = np.dtype([
    ("position", "<f4", (3,)),
    ("scale", "<f4", (3,)),
    ("rgba", "u1", (4,)),
    ("rotation", "u1", (4,)),
])


def is_splat_path(path: str | Path) -> bool:
    """True for a ``.splat`` file name (the format has no magic bytes to sniff)."""
    return Path(path).suffix.lower() == ".splat"


def read_splat(data: bytes, source: str | Path) -> tuple[Gaussians, np.ndarray]:
    """Decode every row of a ``.splat`` file.

    Returns:
        gaussians: all rows, float32 CPU, SH degree 0; quaternions not yet normalised.
        finite: ``[N]`` bool, True where position and scale (all that can be) are finite.

    Raises:
        InputError: when the size is not a multiple of 32 bytes.
    """
    size = len(data)
    if size % SPLAT_ROW_BYTES:
        raise InputError(source, None, f"a .splat file holds {SPLAT_ROW_BYTES}-byte rows, "
                         f"but its size ({size} bytes) is not a multiple of "
                         f"{SPLAT_ROW_BYTES}: {size // SPLAT_ROW_BYTES} rows and "
                         f"{size % SPLAT_ROW_BYTES} stray bytes")
    rows = np.frombuffer(data, dtype=SPLAT_ROW)
    n = rows.shape[0]
    means = rows["position"].astype(np.float32)
    scales = rows["scale"].astype(np.float32)
    rgba = rows["rgba"].astype(np.float64) / 255.0
    quats = (rows["rotation"].astype(np.float64) - 128.0) / 128.0
    finite = np.isfinite(means).all(axis=1) & np.isfinite(scales).all(axis=1)
    sh = ((rgba[:, :3] - 0.5) / SH_C0).reshape(n, 1, 3)
    g = Gaussians(
        means=torch.from_numpy(means),
        quats=torch.from_numpy(quats.astype(np.float32)),
        scales=torch.from_numpy(scales),
        opacities=torch.from_numpy(clamp_opacities(rgba[:, 3]).astype(np.float32)),
        sh=torch.from_numpy(sh.astype(np.float32)),
    )
    return g, finite
