"""COCO instance-segmentation records (the ``instances_*.json`` of a dataset).

Contract 4: category id = class index + 1 (COCO reserves 0), segmentations are
compressed RLE of the visible mask, ``area`` is the visible pixel count and
``bbox`` is ``[x, y, width, height]`` with edges at pixel borders. Every record
loads in pycocotools and its masks reproduce the visible masks exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gs_backend.labels.boxes import Box
from gs_backend.labels.coco_rle import rle_encode

SUPERCATEGORY = "instrument"


def coco_category_id(class_index: int) -> int:
    """COCO category id of a class: its index in the scenario's ``classes`` plus 1."""
    return class_index + 1


def coco_categories(classes: list[str]) -> list[dict[str, Any]]:
    """``categories`` for the scenario's ``classes``, in class-index order."""
    return [
        {"id": coco_category_id(index), "name": name, "supercategory": SUPERCATEGORY}
        for index, name in enumerate(classes)
    ]


def coco_image(image_id: int, file_name: str, width: int, height: int) -> dict[str, Any]:
    """One ``images`` entry; ``file_name`` relative to the dataset's image folder."""
    return {"id": image_id, "file_name": file_name, "width": width, "height": height}


def coco_annotation(
    ann_id: int,
    image_id: int,
    category_id: int,
    mask: np.ndarray,  # [H, W] bool, the instance's visible pixels
    box: Box,
) -> dict[str, Any]:
    """One ``annotations`` entry for an instance's visible pixels.

    Args:
        ann_id: annotation id, unique in the file (pycocotools wants ids >= 1).
        image_id: id of the ``images`` entry it belongs to.
        category_id: ``coco_category_id(class_index)``.
        mask: ``[H, W]`` visible pixels of the instance (nonzero = visible).
        box: the instance's tight box (from :func:`~gs_backend.labels.instance_stats`).
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    if ann_id < 1:  # COCOeval treats a matched id of 0 as "unmatched"
        raise ValueError(f"annotation ids start at 1, got {ann_id}")
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle_encode(mask),
        "area": int(np.count_nonzero(mask)),
        "bbox": list(box.as_xywh()),
        "iscrowd": 0,
    }


def coco_document(
    images: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
    categories: list[dict[str, Any]],
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole COCO file: ``info``, ``licenses`` (empty), ``images``, ``annotations``,
    ``categories``."""
    return {
        "info": dict(info) if info is not None else {},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
