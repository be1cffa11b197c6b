"""Load a Gaussian file into torch: read it with :mod:`gs_contract.splats`, drop the
unusable rows (:func:`gs_contract.splats.usable_rows`, the rule the Blender proxy uses
too), normalise the quaternions.

``source_index`` keeps the row number in the file of every Gaussian kept, so indices
into the file (a scenario's ``keep`` list) map onto the loaded set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gs_backend.gaussians import Gaussians
from gs_contract.splats import (
    SplatData,
    SplatFormat,
    normalise_quaternions,
    read_splat_file,
    usable_rows,
)


@dataclass(frozen=True)
class LoadedGaussians:
    """The usable Gaussians of one file and where each came from.

    Attributes:
        gaussians: usable rows only, float32, CPU, unit quaternions.
        source_index: ``[N]`` int64, the row in the file of each kept Gaussian.
        file_count: rows in the file.
        non_finite: rows dropped (NaN or +-inf values, or a zero quaternion).
        format: the detected file format.
        path: the file read.
    """

    gaussians: Gaussians
    source_index: np.ndarray
    file_count: int
    non_finite: int
    format: SplatFormat
    path: Path


def gaussians_from_splat(splat: SplatData, rows: np.ndarray) -> Gaussians:
    """The ``rows`` (int indices) of ``splat`` as CPU float32 :class:`Gaussians`, with unit
    quaternions."""
    def pick(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a[rows]))

    return Gaussians(
        means=pick(splat.means),
        quats=torch.from_numpy(normalise_quaternions(np.ascontiguousarray(splat.quats[rows]))),
        scales=pick(splat.scales),
        opacities=pick(splat.opacities),
        sh=pick(splat.sh),
    )


def load_gaussians(path: str | Path) -> LoadedGaussians:
    """Read an Inria PLY, SuperSplat compressed PLY, ``.splat`` or ``.spz`` file.

    Raises:
        InputError: one message naming the file and what is wrong with it.
    """
    splat = read_splat_file(path)
    rows = np.flatnonzero(usable_rows(splat)).astype(np.int64)
    return LoadedGaussians(
        gaussians=gaussians_from_splat(splat, rows),
        source_index=rows,
        file_count=splat.count,
        non_finite=splat.count - rows.size,
        format=splat.format,
        path=Path(splat.path),
    )
