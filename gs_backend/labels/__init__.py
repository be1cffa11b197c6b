"""Labels derived from a rendered frame: instance map, boxes, YOLO rows, COCO records.

Everything here is numpy in, plain data out, and runs once per frame.
"""

from gs_backend.labels.boxes import Box, InstanceStats, instance_stats
from gs_backend.labels.coco import (
    coco_annotation,
    coco_categories,
    coco_category_id,
    coco_document,
    coco_image,
)
from gs_backend.labels.coco_rle import rle_counts, rle_encode, rle_string
from gs_backend.labels.instance_map import visible_instance_map
from gs_backend.labels.yolo import (
    instance_polygon,
    yolo_detect_row,
    yolo_label_text,
    yolo_segment_row,
)

__all__ = [
    "Box",
    "InstanceStats",
    "coco_annotation",
    "coco_categories",
    "coco_category_id",
    "coco_document",
    "coco_image",
    "instance_polygon",
    "instance_stats",
    "rle_counts",
    "rle_encode",
    "rle_string",
    "visible_instance_map",
    "yolo_detect_row",
    "yolo_label_text",
    "yolo_segment_row",
]
