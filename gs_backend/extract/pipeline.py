"""The extraction pipeline: which rows of a capture make the instrument, and why.

Stages, in this order, each working on what the previous ones left:

1. ``unusable``: rows :func:`gs_contract.splats.usable_rows` drops (NaN, inf, zero
   quaternion), never kept.
2. ``crop`` (with a crop file): rows whose centre fails the crop volumes.
3. ``colour`` (with a colour key): rows whose display DC colour fails the key.
4. the automatic method (unless switched off): :func:`gs_backend.extract.auto.auto_extract`
   on what is left; it reports its own stages (``auto.*``).

A stage that leaves nothing is refused (:class:`InputError` naming the stage and what to
change), and so is a ``keep`` crop volume that holds none of the usable Gaussians (a
volume placed in the wrong coordinates is the usual cause). Numpy only: no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gs_backend import interrupt
from gs_backend.extract.auto import StageReport, auto_extract
from gs_backend.extract.colour import ColourKey
from gs_contract.crop import Crop
from gs_contract.errors import InputError
from gs_contract.splats import SplatData, usable_rows

StageListener = Callable[[StageReport, int], None]  # (stage, rows left after it)


@dataclass(frozen=True)
class ExtractOptions:
    """What to run: ``crop`` (and the file it came from, for messages), ``colour``,
    and whether the automatic method runs after them."""

    crop: Crop | None = None
    crop_path: Path | None = None
    colour: ColourKey | None = None
    auto: bool = True


@dataclass(frozen=True)
class ExtractResult:
    """``keep``: ``[N]`` bool over the capture's rows; ``stages`` in the order they ran."""

    keep: np.ndarray
    stages: tuple[StageReport, ...]
    usable: int

    @property
    def kept(self) -> int:
        return int(self.keep.sum())

    def keep_indices(self) -> np.ndarray:
        """``[K]`` int64 sorted row indices of the kept Gaussians (a scenario's ``keep``)."""
        return np.flatnonzero(self.keep).astype(np.int64)


def run_extraction(splat: SplatData, options: ExtractOptions,
                   on_stage: StageListener | None = None) -> ExtractResult:
    """Run the stages on every row of ``splat``.

    Raises:
        InputError: a stage that keeps nothing, or a ``keep`` volume holding no usable
            Gaussian; ``KeyboardInterrupt`` between stages after Ctrl-C.
    """
    stages: list[StageReport] = []

    def record(stage: StageReport, keep: np.ndarray) -> None:
        stages.append(stage)
        left = int(keep.sum())
        if on_stage is not None:
            on_stage(stage, left)
        if left == 0:
            raise _emptied(splat, stage, options)
        interrupt.checkpoint()

    keep = usable_rows(splat)
    usable = int(keep.sum())
    record(StageReport("unusable", splat.count - usable, {}), keep)
    if options.crop is not None:
        _check_keep_volumes(splat, keep, options)
        before = int(keep.sum())
        keep = keep & options.crop.passes(splat.means)
        record(StageReport("crop", before - int(keep.sum()), _crop_params(options.crop)), keep)
    if options.colour is not None:
        before = int(keep.sum())
        keep = keep & options.colour.passes(splat.dc_colors())
        record(StageReport("colour", before - int(keep.sum()), options.colour.params()), keep)
    if options.auto:
        result = auto_extract(splat.means, splat.scales, splat.opacities, keep.copy())
        left = int(keep.sum())
        for stage in result.stages:
            stages.append(stage)
            left -= stage.removed
            if on_stage is not None:
                on_stage(stage, left)
        keep = np.asarray(result.keep, dtype=bool) & keep
        if not keep.any():
            raise _emptied(splat, StageReport("auto", 0), options)
        interrupt.checkpoint()
    return ExtractResult(keep=keep, stages=tuple(stages), usable=usable)


def _crop_params(crop: Crop) -> dict[str, Any]:
    modes = [v.mode for v in crop.volumes]
    return {"volumes": len(modes), "keep_volumes": modes.count("keep"),
            "remove_volumes": modes.count("remove")}


def _check_keep_volumes(splat: SplatData, usable: np.ndarray, options: ExtractOptions) -> None:
    """Refuse a ``keep`` volume that holds none of the usable Gaussians."""
    assert options.crop is not None
    means = splat.means[usable]
    for i, volume in enumerate(options.crop.volumes):
        if volume.mode == "keep" and not volume.contains(means).any():
            lo, hi = means.min(axis=0), means.max(axis=0)
            raise InputError(options.crop_path or "--crop", f"volumes[{i}]",
                             f"this keep volume holds none of the {means.shape[0]} usable "
                             f"Gaussians of {Path(splat.path).name} (they lie within x "
                             f"{lo[0]:.4g}..{hi[0]:.4g}, y {lo[1]:.4g}..{hi[1]:.4g}, z "
                             f"{lo[2]:.4g}..{hi[2]:.4g}); is capture_from_volume in the "
                             "capture's own (PLY) coordinates?")


def _emptied(splat: SplatData, stage: StageReport, options: ExtractOptions) -> InputError:
    """The refusal for a stage that left no Gaussian."""
    if stage.name == "unusable":
        return InputError(splat.path, None, "no usable Gaussian: every row holds NaN or "
                                            "infinite values or a zero quaternion")
    if stage.name == "crop":
        return InputError(options.crop_path or "--crop", None,
                          "the crop keeps nothing: no usable Gaussian lies inside a keep "
                          "volume and outside every remove volume")
    if stage.name == "colour":
        return InputError("--colour-key", None,
                          f"the colour stage keeps nothing of the {stage.removed} Gaussians "
                          "left before it; raise --colour-tolerance or check the colours "
                          "(the display DC colour of each Gaussian is compared)")
    return InputError(splat.path, None, "the automatic method kept nothing; use --crop or "
                                        "--colour-key with --no-auto")
