"""Contact sheet: drawn from a hand-made dataset folder (contract 4 layout)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from gs_backend.contact_sheet import (
    CAPTION_HEIGHT,
    HEADER_HEIGHT,
    TILE_PADDING,
    instance_color,
    make_contact_sheet,
)
from gs_contract.errors import InputError

W, H = 80, 60
GREY_BGR = (90, 100, 110)


def _write_frame(root: Path, name: str, split: str, instance_map: np.ndarray,
                 instances: list[dict]) -> dict:
    image = np.empty((H, W, 3), np.uint8)
    image[:] = GREY_BGR
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "masks" / split).mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / "images" / split / f"{name}.png"), image)
    assert cv2.imwrite(str(root / "masks" / split / f"{name}.png"), instance_map.astype(np.uint16))
    return {"name": name, "split": split, "image": f"images/{split}/{name}.png",
            "mask": f"masks/{split}/{name}.png", "instances": instances}


def _box_of(instance_map: np.ndarray, iid: int) -> list[int]:
    ys, xs = np.nonzero(instance_map == iid)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _instance(iid: int, instance_map: np.ndarray, cls: str, index: int) -> dict:
    return {"id": iid, "object": f"obj{iid}", "class": cls, "class_index": index,
            "box": _box_of(instance_map, iid), "visible_pixels": int((instance_map == iid).sum()),
            "labelled": True}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """Three frames: two instances; an L-shaped one; an empty frame."""
    root = tmp_path / "ds"
    maps = [np.zeros((H, W), np.uint16) for _ in range(3)]
    maps[0][20:40, 10:30] = 1
    maps[0][30:50, 50:70] = 2
    maps[1][10:50, 10:20] = 1  # an L: vertical bar ...
    maps[1][40:50, 10:60] = 1  # ... and its foot
    frames = [
        _write_frame(root, "frame_0001", "train", maps[0],
                     [_instance(1, maps[0], "needle_driver", 0),
                      _instance(2, maps[0], "grasper", 1)]),
        _write_frame(root, "frame_0002", "val", maps[1],
                     [_instance(1, maps[1], "needle_driver", 0)]),
        _write_frame(root, "frame_0003", "train", maps[2], []),
    ]
    manifest = {"format": "gs-dataset-manifest", "version": 1,
                "classes": ["needle_driver", "grasper"], "frames": frames}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "data.yaml").write_text("names:\n  0: needle_driver\n  1: grasper\n")
    return root


def _tile_origin(k: int, columns: int, thumb_w: int, tile_h: int) -> tuple[int, int]:
    r, c = divmod(k, columns)
    return (TILE_PADDING + c * (thumb_w + TILE_PADDING),
            HEADER_HEIGHT + TILE_PADDING + r * (tile_h + TILE_PADDING))


def _rgb_at(sheet_bgr: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in sheet_bgr[y, x])
    return (r, g, b)


def test_sheet_size_and_box_colours_at_the_scaled_box_edges(dataset, tmp_path):
    root = dataset
    thumb_w, columns = 160, 2  # scale 2
    out = make_contact_sheet(root, tmp_path / "sheet.png", columns=columns, thumb_width=thumb_w)
    sheet = cv2.imread(str(out), cv2.IMREAD_COLOR)
    thumb_h = H * thumb_w // W
    tile_h = thumb_h + CAPTION_HEIGHT
    assert sheet.shape == (HEADER_HEIGHT + 2 * tile_h + 3 * TILE_PADDING,
                           2 * thumb_w + 3 * TILE_PADDING, 3)

    x0, y0 = _tile_origin(0, columns, thumb_w, tile_h)
    # Instance 2's box [50, 30, 70, 50] -> thumbnail [100, 60] .. [139, 99] inclusive.
    assert _rgb_at(sheet, x0 + 120, y0 + 99) == instance_color(2)  # bottom edge
    assert _rgb_at(sheet, x0 + 139, y0 + 80) == instance_color(2)  # right edge
    assert _rgb_at(sheet, x0 + 100, y0 + 80) == instance_color(2)  # left edge
    # Instance 1's box [10, 20, 30, 40] -> [20, 40] .. [59, 79].
    assert _rgb_at(sheet, x0 + 40, y0 + 79) == instance_color(1)
    assert _rgb_at(sheet, x0 + 59, y0 + 60) == instance_color(1)
    assert instance_color(1) != instance_color(2)
    # Inside the boxes and away from them, the picture itself (grey) shows through.
    grey_rgb = GREY_BGR[::-1]
    for x, y in [(120, 80), (40, 60), (80, 20), (150, 110)]:
        assert np.abs(np.subtract(_rgb_at(sheet, x0 + x, y0 + y), grey_rgb)).max() <= 2


def test_mask_outline_follows_the_mask_not_the_box(dataset, tmp_path):
    root = dataset
    thumb_w, columns = 160, 3
    out = make_contact_sheet(root, tmp_path / "sheet.png", columns=columns, thumb_width=thumb_w)
    sheet = cv2.imread(str(out), cv2.IMREAD_COLOR)
    tile_h = H * thumb_w // W + CAPTION_HEIGHT
    x0, y0 = _tile_origin(1, columns, thumb_w, tile_h)  # the L-shaped frame
    colour = instance_color(1)
    # The L's inner corner (image x = 20, y = 40) lies strictly inside the box:
    # only the mask outline can put the instance colour there.
    inner = [(x, y) for x in range(38, 43) for y in range(78, 83)]
    assert any(_rgb_at(sheet, x0 + x, y0 + y) == colour for x, y in inner)
    # The empty top-right part of the box stays the picture.
    assert np.abs(np.subtract(_rgb_at(sheet, x0 + 90, y0 + 40), GREY_BGR[::-1])).max() <= 2


def test_empty_frame_tile_is_just_the_picture(dataset, tmp_path):
    root = dataset
    thumb_w, columns = 160, 3
    out = make_contact_sheet(root, tmp_path / "sheet.png", columns=columns, thumb_width=thumb_w)
    sheet = cv2.imread(str(out), cv2.IMREAD_COLOR)
    thumb_h = H * thumb_w // W
    x0, y0 = _tile_origin(2, columns, thumb_w, thumb_h + CAPTION_HEIGHT)
    tile = sheet[y0:y0 + thumb_h, x0:x0 + thumb_w].astype(int)
    assert np.abs(tile - np.array(GREY_BGR)).max() <= 2


def test_max_frames_spreads_over_the_sequence(dataset, tmp_path):
    root = dataset
    out = make_contact_sheet(root, tmp_path / "sheet.png", max_frames=2, columns=6,
                             thumb_width=160)
    sheet = cv2.imread(str(out), cv2.IMREAD_COLOR)
    assert sheet.shape[1] == 2 * 160 + 3 * TILE_PADDING  # two tiles, one row
    tile_h = H * 2 + CAPTION_HEIGHT
    # The second tile is the last frame (the empty one), not frame_0002 (the L).
    x0, y0 = _tile_origin(1, 2, 160, tile_h)
    assert np.abs(sheet[y0:y0 + 2 * H, x0:x0 + 160].astype(int) - np.array(GREY_BGR)).max() <= 2


def test_written_atomically_without_leftovers(dataset, tmp_path):
    root = dataset
    out_dir = tmp_path / "sheets"
    make_contact_sheet(root, out_dir / "sheet.png", thumb_width=64)
    assert [p.name for p in out_dir.iterdir()] == ["sheet.png"]


def test_missing_manifest_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"manifest\.json"):
        make_contact_sheet(tmp_path, tmp_path / "sheet.png")


def test_wrong_manifest_format_names_the_field(dataset, tmp_path):
    root = dataset
    (root / "manifest.json").write_text(json.dumps({"format": "something-else", "frames": []}))
    with pytest.raises(InputError, match="format"):
        make_contact_sheet(root, tmp_path / "sheet.png")


def test_missing_image_names_the_image(dataset, tmp_path):
    root = dataset
    (root / "images" / "val" / "frame_0002.png").unlink()
    with pytest.raises(InputError, match=r"frame_0002\.png"):
        make_contact_sheet(root, tmp_path / "sheet.png")
