"""``gs-backend extract --preview``: the sheet of orbit views, kept beside removed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from gs_backend.cli import main
from gs_backend.extract.preview import (
    DEFAULT_PANEL,
    DEFAULT_VIEWS,
    HEADER_HEIGHT,
    PADDING,
    orbit_cameras,
    sheet_size,
)
from tests.test_extract_cli import TOOL_CENTRE, make_capture, sphere_crop


def _panels(sheet: np.ndarray, views: int, panel: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kept, removed) RGB panels of each view row, cut out by the documented geometry."""
    rgb = sheet[:, :, ::-1].astype(int)
    out = []
    for row in range(views):
        top = HEADER_HEIGHT + PADDING + row * (panel + PADDING)
        left = rgb[top:top + panel, PADDING:PADDING + panel]
        right = rgb[top:top + panel, 2 * PADDING + panel:2 * PADDING + 2 * panel]
        out.append((left, right))
    return out


def _reddish(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 120) & (img[..., 0] > 2 * img[..., 2]) & (img[..., 0] > 2 * img[..., 1])


def _bluish(img: np.ndarray) -> np.ndarray:
    return (img[..., 2] > 120) & (img[..., 2] > 2 * img[..., 0])


def test_preview_sheet_shows_kept_and_removed_apart(tmp_path: Path, capsys) -> None:
    # Background from just outside the tool to beyond the preview's orbit.
    make_capture(tmp_path / "capture.ply", n_tool=400, n_background=3000, tidy=True,
                 background_radius=(0.8, 4.0))
    crop = sphere_crop(tmp_path / "crop.json", radius=0.6)
    sheet_path = tmp_path / "sheet.png"
    code = main(["extract", str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                 "--crop", str(crop), "--no-auto", "--preview", str(sheet_path), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["preview"] == str(sheet_path)
    sheet = cv2.imread(str(sheet_path), cv2.IMREAD_COLOR)
    width, height = sheet_size()
    assert sheet.shape == (height, width, 3)
    assert (width, height) == (2 * DEFAULT_PANEL + 3 * PADDING,
                               HEADER_HEIGHT + DEFAULT_VIEWS * DEFAULT_PANEL
                               + (DEFAULT_VIEWS + 1) * PADDING)
    for kept, removed in _panels(sheet, DEFAULT_VIEWS, DEFAULT_PANEL):
        # The red tool fills the middle of the kept panel and is absent from the other.
        assert _reddish(kept).mean() > 0.1
        assert _reddish(kept[96:160, 96:160]).mean() > 0.9
        assert not _bluish(kept).any()
        assert not _reddish(removed).any()
        assert _bluish(removed).mean() > 0.01
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left no temp file


@pytest.mark.parametrize("seed", [0, 1])
def test_orbit_cameras_frame_the_kept_set(seed: int) -> None:
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    pts = TOOL_CENTRE + (rng.normal(size=(2000, 3)) * [5.0, 0.5, 0.2]) @ axes.T
    cameras = orbit_cameras(pts, views=4, panel=200)
    assert len(cameras) == 4
    positions = []
    for cam in cameras:
        r, t = cam.world_to_camera[:3, :3], cam.world_to_camera[:3, 3]
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)  # a rotation: OpenCV axes kept
        cam_pts = pts @ r.T + t
        assert (cam_pts[:, 2] > 0).all()  # all in front
        uv = cam_pts @ cam.K.T
        uv = uv[:, :2] / uv[:, 2:]
        inside = ((uv >= 0) & (uv <= 200)).all(axis=1)
        assert inside.mean() > 0.98
        centre = cam.K @ (r @ np.median(pts, axis=0) + t)
        np.testing.assert_allclose(centre[:2] / centre[2], [100, 100], atol=1e-6)
        positions.append(-r.T @ t)
    # Four different directions around the set.
    d = np.array(positions) - np.median(pts, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    assert (d @ d.T - np.eye(4)).max() < 0.9


def test_titles_are_shrunk_to_fit_their_column():
    """A long title never spills past the width it is given (the removed column's title
    names two counts and used to run off the sheet)."""
    from gs_backend.extract import preview

    image = np.zeros((60, 400, 3), dtype=np.uint8)
    preview._text(image, "removed 21,461,000 (13,964,000 within the orbit)", (6, 40), 200)
    columns = np.flatnonzero(image.any(axis=(0, 2)))
    assert columns.size and columns.min() >= 6 and columns.max() < 6 + 200 + 2
