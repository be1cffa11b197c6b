"""The automatic instrument extraction: which Gaussians of an orbit capture are the tool.

INTERIM: this module fixes the interface only (it keeps every usable row); the method
itself is being written (issue 7). Do not rely on its result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class StageReport:
    """What one stage removed, and the parameters it chose (for ``--json``)."""

    name: str
    removed: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AutoResult:
    """``keep``: ``[N]`` bool, the rows judged to be the instrument; ``stages`` in order."""

    keep: np.ndarray
    stages: tuple[StageReport, ...]


def auto_extract(
    means: np.ndarray,  # [N, 3] float32, capture (PLY) coordinates, any unit and axes
    scales: np.ndarray,  # [N, 3] float32 linear standard deviations
    opacities: np.ndarray,  # [N] float32 in (0, 1)
    candidates: np.ndarray,  # [N] bool: rows to consider (usable and not cropped away)
) -> AutoResult:
    """The rows of ``candidates`` that belong to the instrument (INTERIM: all of them)."""
    keep = np.asarray(candidates, dtype=bool).copy()
    return AutoResult(keep=keep, stages=())
