"""Where a proxy's Gaussians are: its file (PLY) coordinates -> world.

A proxy's mesh holds the Gaussian centres minus ``Object.gsds.source_origin`` (zero for
an imported proxy; a split part's pivot otherwise), so the pose of the file's own
coordinates is ``matrix_world @ translation(-source_origin)``. The scenario export and
the crop volumes of Extract Instrument both use this one rule.
"""

from __future__ import annotations

import numpy as np


def world_from_file(
    world_from_mesh: np.ndarray,  # [..., 4, 4] row-major, the object's matrix_world
    source_origin: np.ndarray,  # [..., 3] the object's gsds.source_origin
) -> np.ndarray:
    """``[..., 4, 4]`` float64 ``world_from_mesh @ translation(-source_origin)``."""
    out = np.array(world_from_mesh, dtype=np.float64, copy=True)
    origin = np.asarray(source_origin, dtype=np.float64)
    out[..., :3, 3] -= np.einsum("...ij,...j->...i", out[..., :3, :3], origin)
    return out
