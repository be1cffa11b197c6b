"""Everything one rendered frame contributes to the dataset.

:func:`write_frame` runs in a worker thread: it derives the labels from the
rendered planes, encodes the images, writes every file atomically and writes
the frame's record last. The record's presence is what marks a frame as done,
so an interrupted frame is simply rendered again on resume. Every dataset file goes
through :func:`write_output`, which names the file when it cannot be written.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gs_backend.dataset.writes import write_file_atomic
from gs_backend.frame_renderer import FrameImages
from gs_backend.labels import (
    InstanceStats,
    instance_stats,
    rle_encode,
    visible_instance_map,
    yolo_detect_row,
    yolo_label_text,
    yolo_segment_row,
)
from gs_contract.atomic import read_json_or_none
from gs_contract.dataset import DatasetLayout, Split
from gs_contract.errors import InputError
from gs_contract.scenario import FrameSpec, InstanceSpec, OutputSettings, Scenario

JPEG_QUALITY = 95


@dataclass(frozen=True)
class FrameJob:
    """What a worker needs to write one frame (all plain data, no tensors)."""

    layout: DatasetLayout
    scenario: Scenario
    fingerprint: str
    frame: FrameSpec
    split: Split
    images: FrameImages


def write_frame(job: FrameJob) -> dict[str, Any]:
    """Derive labels, write the frame's files and its record; return the record."""
    layout, scenario, frame, split = job.layout, job.scenario, job.frame, job.split
    out: OutputSettings = scenario.output
    cam = frame.camera
    labels = frame_labels(scenario, frame, job.images.weights)
    instance_map, stats = labels.instance_map, labels.stats

    image_path = layout.image(split, frame.name, out.image_format)
    write_output(image_path, encode_rgb(job.images.rgb, out.image_format))

    instances: list[dict[str, Any]] = []
    label_rows: list[str] = []
    amodal_files: dict[str, str] = {}
    for inst, entry in labels.instances:
        iid, s, pixels, labelled = (inst.instance_id, stats.get(inst.instance_id),
                                    entry["visible_pixels"], entry["labelled"])
        if out.amodal and iid in job.images.amodal:
            amodal_mask = job.images.amodal[iid] >= out.mask_threshold
            amodal_pixels = int(amodal_mask.sum())
            entry["amodal_pixels"] = amodal_pixels
            entry["visible_fraction"] = (pixels / amodal_pixels) if amodal_pixels else 0.0
            path = layout.amodal(split, frame.name, iid)
            write_output(path, encode_png(amodal_mask.astype(np.uint8) * 255))
            amodal_files[str(iid)] = layout.relative(path)
        if labelled:
            mask = instance_map == iid
            if out.yolo_task == "segment":
                row = yolo_segment_row(inst.class_index, mask, cam.width, cam.height)
            else:
                row = yolo_detect_row(inst.class_index, s.box, cam.width, cam.height)
            if row:
                label_rows.append(row)
            if out.coco:
                entry["coco"] = {
                    "segmentation": rle_encode(mask),
                    "area": pixels,
                    "bbox": list(s.box.as_xywh()),
                }
        instances.append(entry)

    label_path = layout.label(split, frame.name)
    write_output(label_path, yolo_label_text(label_rows))
    record: dict[str, Any] = {
        "name": frame.name, "index": frame.index, "split": split,
        "fingerprint": job.fingerprint,
        "width": cam.width, "height": cam.height,
        "image": layout.relative(image_path), "label": layout.relative(label_path),
    }
    if out.masks:
        mask_path = layout.mask(split, frame.name)
        write_output(mask_path, encode_png(instance_map))
        record["mask"] = layout.relative(mask_path)
    if out.depth and job.images.depth is not None:
        depth_path = layout.depth(split, frame.name)
        write_output(depth_path, encode_npy(job.images.depth.astype(np.float32)))
        record["depth"] = layout.relative(depth_path)
    if amodal_files:
        record["amodal"] = amodal_files
    record["camera"] = cam.to_json()
    record["poses"] = {k: v.tolist() for k, v in frame.poses.items()}
    record["instances"] = instances
    write_output(layout.record(frame.name), json.dumps(record))
    return record


@dataclass(frozen=True)
class FrameLabels:
    """The labels of one rendered frame.

    Attributes:
        instance_map: ``[H, W]`` uint16 visible-instance map (0 = none).
        stats: instance id -> visible pixels and tight box, for the ids in the map.
        instances: for each instance with a part posed in the frame, in id order, its
            spec and its manifest entry (``id``, ``instance``, ``object``, ``objects``,
            ``class``, ``class_index``, ``box``, ``visible_pixels``, ``labelled``).
    """

    instance_map: np.ndarray
    stats: dict[int, InstanceStats]
    instances: list[tuple[InstanceSpec, dict[str, Any]]]


def frame_labels(scenario: Scenario, frame: FrameSpec, weights: np.ndarray) -> FrameLabels:
    """Visible masks, boxes and which instances are labelled, from the weight planes
    ``[H, W, K]`` of a rendered frame (what the dataset and the sidecar's overlay show)."""
    out = scenario.output
    instance_map = visible_instance_map(weights, out.mask_threshold)
    stats = instance_stats(instance_map, len(scenario.instances))
    instances: list[tuple[InstanceSpec, dict[str, Any]]] = []
    for inst in scenario.instances:
        parts = [name for name in inst.objects if name in frame.poses]
        if not parts:  # no part of it posed in this frame: not rendered, not listed
            continue
        s = stats.get(inst.instance_id)
        pixels = int(s.pixels) if s is not None else 0
        instances.append((inst, {
            "id": inst.instance_id, "instance": inst.name, "object": parts[0],
            "objects": parts, "class": inst.class_name, "class_index": inst.class_index,
            "box": None if s is None else list(s.box.as_xyxy()),
            "visible_pixels": pixels,
            "labelled": pixels > 0 and pixels >= out.min_visible_pixels,
        }))
    return FrameLabels(instance_map, stats, instances)


def write_output(path: Path, data: bytes | str) -> None:
    """Write a dataset file atomically (str as UTF-8).

    Raises:
        InputError: the file cannot be written (read-only folder, disk full), naming it;
            what is already in the folder is untouched.
    """
    try:
        write_file_atomic(path, data.encode("utf-8") if isinstance(data, str) else data)
    except OSError as exc:
        raise InputError(path, None, f"cannot write: {exc.strerror or exc} (finished "
                                     "frames are kept: fix this and run the same command "
                                     "to resume)") from None


def record_is_complete(layout: DatasetLayout, record: dict[str, Any], fingerprint: str) -> bool:
    """True when the record belongs to this scenario and every file it names exists."""
    if record.get("fingerprint") != fingerprint:
        return False
    paths = [record.get("image"), record.get("label"), record.get("mask"), record.get("depth")]
    paths += list(record.get("amodal", {}).values())
    return all(layout.root.joinpath(p).is_file() for p in paths if p)


def to_uint8_rgb(rgb: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` float -> uint8 as round(clip(rgb, 0, 1) * 255) (contract 3).

    ``rgb`` may be a strided view; one temporary, scaled and rounded in place."""
    levels = np.clip(rgb, 0.0, 1.0)
    levels *= 255.0
    return np.rint(levels, out=levels).astype(np.uint8)


def encode_rgb(rgb: np.ndarray, image_format: str) -> bytes:
    """PNG (or JPEG) bytes of ``[H, W, 3]`` float RGB.

    PNG uses OpenCV's default zlib setting, level 1 with the RLE strategy: the fastest
    that still compresses (~14 ms and ~340 kB for a 640x480 demo frame; level 0 takes
    ~9 ms but writes ~920 kB, level 6 ~90 ms for ~290 kB).
    """
    bgr = cv2.cvtColor(to_uint8_rgb(rgb), cv2.COLOR_RGB2BGR)
    if image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    else:
        ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image_format} image")
    return buf.tobytes()


def encode_png(plane: np.ndarray) -> bytes:
    """Single-channel uint8 or uint16 PNG."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(plane))
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG mask")
    return buf.tobytes()


def encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def read_record(path: Path) -> dict[str, Any] | None:
    """A frame record, or None when it is missing or unreadable (then the frame is redone)."""
    return read_json_or_none(path)
