"""A contact sheet of a rendered dataset: one PNG to check the labels at a glance.

Each tile is a frame's image, scaled to ``thumb_width``, with every instance's box,
class name and visible-mask outline drawn in that instance's colour, and the frame
name and split underneath. It reads only the dataset files (DESIGN contract 4):
``manifest.json``, the images and the uint16 instance masks.

Sheet geometry (pixels): a header strip of ``HEADER_HEIGHT``, then tiles on a grid
with ``TILE_PADDING`` around and between them; a tile is the thumbnail above a
caption strip of ``CAPTION_HEIGHT``. Thumbnail pixel (u, v) shows image position
(u / scale, v / scale), ``scale = thumb_width / image width``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from gs_contract.atomic import write_bytes_atomic
from gs_contract.dataset import MANIFEST_FORMAT
from gs_contract.errors import InputError

HEADER_HEIGHT = 30
CAPTION_HEIGHT = 22
TILE_PADDING = 6
SHEET_BACKGROUND_RGB = (24, 24, 28)
CAPTION_RGB = (225, 225, 225)

# Distinct, saturated colours (RGB) for instance ids 1, 2, ...; they repeat after 10.
_PALETTE_RGB = (
    (0, 220, 255), (255, 200, 0), (80, 255, 80), (255, 60, 200), (255, 120, 40),
    (150, 110, 255), (0, 255, 180), (255, 255, 255), (255, 80, 80), (120, 200, 255),
)


def instance_color(instance_id: int) -> tuple[int, int, int]:
    """RGB colour (0-255) the sheet uses for an instance id (1-based)."""
    return _PALETTE_RGB[(instance_id - 1) % len(_PALETTE_RGB)]


def make_contact_sheet(
    dataset_dir: Path,
    out_png: Path,
    *,
    max_frames: int = 24,
    columns: int = 6,
    thumb_width: int = 320,
) -> Path:
    """Draw up to ``max_frames`` frames of a rendered dataset on a grid; return ``out_png``.

    When the dataset has more frames than ``max_frames``, frames evenly spread over
    the whole sequence are shown (always including the first and the last).

    Raises:
        InputError: a missing or malformed ``manifest.json``, or an image it lists
            that cannot be read.
    """
    dataset_dir, out_png = Path(dataset_dir), Path(out_png)
    if max_frames < 1 or columns < 1 or thumb_width < 16:
        raise ValueError("need max_frames >= 1, columns >= 1 and thumb_width >= 16")
    manifest_path = dataset_dir / "manifest.json"
    manifest = _read_manifest(manifest_path)
    frames = _spread(manifest["frames"], max_frames)
    tiles = [_tile(dataset_dir, manifest_path, i, frame, thumb_width) for i, frame in frames]
    header = _header_text(dataset_dir, manifest, shown=len(tiles))
    sheet = _assemble(tiles, columns, thumb_width, header)
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("OpenCV could not encode the contact sheet as PNG")
    write_bytes_atomic(out_png, png.tobytes())
    return out_png


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, None, "file not found (is this a rendered dataset folder?)") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, None, f"cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"line {exc.lineno} column {exc.colno}",
                         f"invalid JSON: {exc.msg}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(path, "format", f"expected {MANIFEST_FORMAT!r}, got {got!r}")
    if not isinstance(manifest.get("frames"), list):
        raise InputError(path, "frames", "missing or not a list")
    return manifest


def _spread(frames: list[Any], count: int) -> list[tuple[int, Any]]:
    """Up to ``count`` (index, frame) pairs evenly spread over ``frames``, in order."""
    if len(frames) <= count:
        return list(enumerate(frames))
    picks = sorted({round(k * (len(frames) - 1) / max(count - 1, 1)) for k in range(count)})
    return [(i, frames[i]) for i in picks]


def _tile(root: Path, manifest_path: Path, index: int, frame: Any,
          thumb_width: int) -> np.ndarray:
    """One tile (BGR uint8): annotated thumbnail above its caption."""
    where = f"frames[{index}]"
    if not isinstance(frame, dict) or not isinstance(frame.get("image"), str):
        raise InputError(manifest_path, f"{where}.image", "missing or not a path")
    image_path = root / frame["image"]
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(image_path, None, f"cannot read the image listed at {where}.image")
    height, width = image.shape[:2]
    scale = thumb_width / width
    thumb_height = max(1, round(height * scale))
    thumb = cv2.resize(image, (thumb_width, thumb_height), interpolation=cv2.INTER_AREA)

    instances = [i for i in frame.get("instances", []) if isinstance(i, dict)]
    instance_map = _read_instance_map(root, frame, (height, width))
    draw_annotations(thumb, instance_map, instances, scale)

    caption = np.empty((CAPTION_HEIGHT, thumb_width, 3), np.uint8)
    caption[:] = _bgr(SHEET_BACKGROUND_RGB)
    text = f"{frame.get('name', '?')}  [{frame.get('split', '?')}]"
    _text(caption, text, (2, CAPTION_HEIGHT - 7), _bgr(CAPTION_RGB), 0.45)
    return np.vstack([thumb, caption])


def draw_annotations(thumb: np.ndarray, instance_map: np.ndarray | None,
                     instances: list[dict[str, Any]], scale: float) -> None:
    """Draw each instance's visible-mask outline, box and class name on ``thumb`` (BGR
    uint8 ``[h, w, 3]``, drawn in place) in the instance's colour.

    Args:
        thumb: the image, ``scale`` times the size of the frame the labels belong to.
        instance_map: the frame's ``[H, W]`` visible-instance map, or None (no outlines).
        instances: manifest entries (``id``, ``box`` [x0, y0, x1, y1] or None, ``class``,
            ``labelled``), in frame pixels.
        scale: thumbnail pixels per frame pixel.
    """
    width = thumb.shape[1]
    line = max(1, round(width / 220))
    if instance_map is not None:
        for inst in instances:
            _draw_outline(thumb, instance_map == int(inst.get("id", 0)), scale,
                          _bgr(instance_color(int(inst.get("id", 0)))), line)
    for inst in instances:
        box = inst.get("box")
        if not box:
            continue
        color = _bgr(instance_color(int(inst.get("id", 0))))
        x0, y0 = round(box[0] * scale), round(box[1] * scale)
        x1, y1 = round(box[2] * scale) - 1, round(box[3] * scale) - 1  # last pixel inside
        cv2.rectangle(thumb, (x0, y0), (max(x0, x1), max(y0, y1)), color, line)
        name = str(inst.get("class", "?")) + ("" if inst.get("labelled", True) else " (unlabelled)")
        _label(thumb, name, (x0, y0), color, width)


def _read_instance_map(root: Path, frame: dict[str, Any],
                       shape: tuple[int, int]) -> np.ndarray | None:
    """The frame's uint16 instance map ``[H, W]``, or None when the dataset has no masks."""
    mask_rel = frame.get("mask")
    if not isinstance(mask_rel, str):
        return None
    mask_path = root / mask_rel
    instance_map = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
    if instance_map is None:
        raise InputError(mask_path, None, "cannot read the instance mask")
    if instance_map.ndim != 2 or instance_map.shape != shape:
        raise InputError(mask_path, None, f"expected a single-channel {shape[1]}x{shape[0]} "
                                          f"instance map, got shape {instance_map.shape}")
    return instance_map


def _draw_outline(thumb: np.ndarray, mask: np.ndarray, scale: float,
                  color: tuple[int, int, int], line: int) -> None:
    """Outline every fragment of a binary mask ``[H, W]`` on the thumbnail."""
    if not mask.any():
        return
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    scaled = [np.round((c.astype(np.float64) + 0.5) * scale - 0.5).astype(np.int32)
              for c in contours]
    cv2.drawContours(thumb, scaled, -1, color, line, cv2.LINE_8)


def _label(img: np.ndarray, text: str, corner: tuple[int, int], color: tuple[int, int, int],
           thumb_width: int) -> None:
    """Class name on a filled tag just above the box's top-left corner (inside if no room)."""
    font_scale = max(0.3, thumb_width / 800)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    x = min(max(corner[0], 0), max(img.shape[1] - tw - 4, 0))
    y = corner[1] - th - base - 3
    if y < 0:
        y = corner[1] + 1
    cv2.rectangle(img, (x, y), (x + tw + 3, y + th + base + 2), color, cv2.FILLED)
    _text(img, text, (x + 2, y + th + 1), (0, 0, 0), font_scale)


def _text(img: np.ndarray, text: str, origin: tuple[int, int], color: tuple[int, int, int],
          font_scale: float) -> None:
    cv2.putText(img, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, color, 1, cv2.LINE_AA)


def _assemble(tiles: list[np.ndarray], columns: int, thumb_width: int,
              header: str) -> np.ndarray:
    """Place tiles on the grid under a header; returns the BGR sheet."""
    columns = max(1, min(columns, len(tiles)))
    rows = max(1, math.ceil(len(tiles) / columns))
    tile_height = max((t.shape[0] for t in tiles), default=CAPTION_HEIGHT)
    width = columns * thumb_width + (columns + 1) * TILE_PADDING
    height = HEADER_HEIGHT + rows * tile_height + (rows + 1) * TILE_PADDING
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = _bgr(SHEET_BACKGROUND_RGB)
    _text(sheet, header, (TILE_PADDING, HEADER_HEIGHT - 9), _bgr(CAPTION_RGB), 0.5)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        x = TILE_PADDING + c * (thumb_width + TILE_PADDING)
        y = HEADER_HEIGHT + TILE_PADDING + r * (tile_height + TILE_PADDING)
        sheet[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return sheet


def _header_text(root: Path, manifest: dict[str, Any], *, shown: int) -> str:
    frames = manifest["frames"]
    labelled = sum(bool(i.get("labelled")) for f in frames if isinstance(f, dict)
                   for i in f.get("instances", []) if isinstance(i, dict))
    classes = ", ".join(str(c) for c in manifest.get("classes", []))
    count = f"{len(frames)} frames" if shown == len(frames) else \
        f"{shown} of {len(frames)} frames"
    return f"{root.resolve().name}: {count}, {labelled} labelled instances  |  classes: {classes}"


def _bgr(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (rgb[2], rgb[1], rgb[0])
