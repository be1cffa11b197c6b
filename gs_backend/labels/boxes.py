"""Per-instance pixel counts and tight boxes from a visible-instance map.

Box convention (DESIGN contract 4): a :class:`Box` stores the inclusive pixel
indices of the first and last visible column and row. Its edges in image
coordinates (origin at the top-left corner of the top-left pixel) are the
pixel borders ``[xmin, ymin, xmax + 1, ymax + 1]`` (:meth:`Box.as_xyxy`). An
instance that occlusion splits into several fragments still gets one box,
spanning all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    """Tight box of an instance's visible pixels, as inclusive pixel indices.

    Attributes:
        xmin: first visible column.
        ymin: first visible row.
        xmax: last visible column (inclusive).
        ymax: last visible row (inclusive).
    """

    xmin: int
    ymin: int
    xmax: int
    ymax: int

    def __post_init__(self) -> None:
        if min(self.xmin, self.ymin) < 0 or self.xmax < self.xmin or self.ymax < self.ymin:
            raise ValueError(f"not a pixel box: {self}")

    @property
    def width(self) -> int:
        """Number of columns the box spans (>= 1)."""
        return self.xmax - self.xmin + 1

    @property
    def height(self) -> int:
        """Number of rows the box spans (>= 1)."""
        return self.ymax - self.ymin + 1

    def as_xyxy(self) -> tuple[int, int, int, int]:
        """Edges in image coordinates: ``(xmin, ymin, xmax + 1, ymax + 1)``."""
        return (self.xmin, self.ymin, self.xmax + 1, self.ymax + 1)

    def as_xywh(self) -> tuple[int, int, int, int]:
        """COCO ``bbox``: ``(xmin, ymin, width, height)`` in image coordinates."""
        return (self.xmin, self.ymin, self.width, self.height)


@dataclass(frozen=True)
class InstanceStats:
    """What one instance shows in one frame.

    Attributes:
        instance_id: the instance id (1-based, as in the instance map).
        pixels: number of visible pixels (> 0).
        box: tight box over all visible pixels, all fragments together.
    """

    instance_id: int
    pixels: int
    box: Box


def instance_stats(
    instance_map: np.ndarray,  # [H, W] integer, 0 = none, k = instance k
    num_instances: int,
) -> dict[int, InstanceStats]:
    """Visible pixel count and tight box of every instance present in the map.

    One vectorised pass per instance id (compare, count, bounding rectangle of
    the nonzero pixels), never a loop over pixels.

    Args:
        instance_map: ``[H, W]`` integer instance map, e.g. from
            :func:`~gs_backend.labels.visible_instance_map`.
        num_instances: the largest id that may occur; ids ``1..num_instances``
            are examined, larger ids in the map are ignored.

    Returns:
        ``{instance_id: InstanceStats}`` for the ids with at least one visible
        pixel, in increasing id order. Absent ids have no entry.
    """
    if instance_map.ndim != 2:
        raise ValueError(f"instance_map must be [H, W], got shape {instance_map.shape}")
    if not 0 <= num_instances <= np.iinfo(np.uint16).max:
        raise ValueError(f"num_instances must be in [0, 65535], got {num_instances}")
    if instance_map.size == 0 or num_instances == 0:
        return {}
    # OpenCV compares uint16 natively; other integer maps are narrowed after a range check.
    if instance_map.dtype != np.uint16:
        low, high = int(instance_map.min()), int(instance_map.max())
        if low < 0 or high > np.iinfo(np.uint16).max:
            raise ValueError(f"instance ids must be in [0, 65535], got [{low}, {high}]")
        instance_map = instance_map.astype(np.uint16)

    stats: dict[int, InstanceStats] = {}
    for instance_id in range(1, num_instances + 1):
        # numpy, not cv2.compare: OpenCV reads a 1x1 map as a scalar and refuses it.
        mask = np.equal(instance_map, instance_id).view(np.uint8)  # [H, W] uint8 0/1
        pixels = cv2.countNonZero(mask)
        if pixels == 0:
            continue
        x, y, w, h = cv2.boundingRect(mask)  # tight rectangle of the nonzero pixels
        box = Box(xmin=x, ymin=y, xmax=x + w - 1, ymax=y + h - 1)
        stats[instance_id] = InstanceStats(instance_id=instance_id, pixels=pixels, box=box)
    return stats
