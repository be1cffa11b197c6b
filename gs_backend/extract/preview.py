"""The extraction preview: a sheet of orbit views, the kept Gaussians beside the removed.

Each row is one view of the capture from a camera orbiting the kept set: the cameras
look at the kept set's centre (per-axis median of the kept centres) from directions
spread around its longest principal axis, slightly raised, far enough that a sphere
holding 99% of the kept centres fills most of the view. The left panel renders only
the kept Gaussians, the right panel only the removed (usable) ones, from the same
camera, with the project's CPU rasterizer (the same semantics as a render).
The removed panel shows the removed Gaussians within the orbit (no further from the
centre than the cameras): what was cut near the tool (floaters, floor, halo). The far
background is left out, which also keeps the sheet quick for captures of millions of
Gaussians, most of them background.

Sheet geometry (pixels): a header of :data:`HEADER_HEIGHT` (the capture's name, then
the column titles with their counts), then ``views`` rows of two ``panel`` x ``panel``
images, with :data:`PADDING` around and between all panels::

    width  = 2 * panel + 3 * PADDING
    height = HEADER_HEIGHT + views * panel + (views + 1) * PADDING
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from gs_backend import interrupt
from gs_backend.gaussians import Gaussians
from gs_backend.io import gaussians_from_splat
from gs_backend.raster import rasterize
from gs_backend.sh import gaussian_colors
from gs_contract.splats import SplatData

HEADER_HEIGHT = 46
PADDING = 6
DEFAULT_PANEL = 256
DEFAULT_VIEWS = 4
FIELD_OF_VIEW_DEG = 40.0
BACKGROUND_RGB = (0.10, 0.10, 0.12)
_SHEET_BGR = (28, 24, 24)
_TEXT_BGR = (225, 225, 225)


def sheet_size(panel: int = DEFAULT_PANEL, views: int = DEFAULT_VIEWS) -> tuple[int, int]:
    """``(width, height)`` in pixels of a sheet (see the module docstring)."""
    return 2 * panel + 3 * PADDING, HEADER_HEIGHT + views * panel + (views + 1) * PADDING


@dataclass(frozen=True)
class OrbitCamera:
    """``world_to_camera`` ``[4, 4]`` (OpenCV axes) and ``K`` ``[3, 3]``, float64; the
    camera looks at ``centre`` (``[3]``, capture coordinates) from ``distance`` away."""

    world_to_camera: np.ndarray
    K: np.ndarray
    centre: np.ndarray
    distance: float


def orbit_cameras(kept_means: np.ndarray, views: int, panel: int) -> list[OrbitCamera]:
    """``views`` cameras around the kept set, for ``panel`` x ``panel`` images.

    Args:
        kept_means: ``[K, 3]`` centres of the kept Gaussians (K >= 1), capture coordinates.
    """
    pts = np.asarray(kept_means, dtype=np.float64)
    centre = np.median(pts, axis=0)
    offsets = pts - centre
    radius = float(np.quantile(np.linalg.norm(offsets, axis=1), 0.99))
    if not radius > 0:
        radius = 1.0 if not np.any(centre) else 1e-3 * float(np.abs(centre).max())
    _, vectors = np.linalg.eigh(offsets.T @ offsets)  # ascending: the last is the longest
    long_axis, a, b = vectors[:, 2], vectors[:, 1], vectors[:, 0]
    half_fov = math.radians(FIELD_OF_VIEW_DEG) / 2
    distance = 1.1 * radius / math.sin(half_fov)
    focal = panel / (2 * math.tan(half_fov))
    K = np.array([[focal, 0, panel / 2], [0, focal, panel / 2], [0, 0, 1.0]])
    cameras = []
    for k in range(views):
        theta = 2 * math.pi * (k + 0.125) / views
        direction = math.cos(theta) * a + math.sin(theta) * b + 0.35 * long_axis
        direction /= np.linalg.norm(direction)
        position = centre + distance * direction
        z = -direction  # forward, towards the centre
        y = -(long_axis - (long_axis @ z) * z)  # image "down" = against the long axis
        y /= np.linalg.norm(y)
        x = np.cross(y, z)  # OpenCV axes are right-handed: x = y cross z
        w2c = np.eye(4)
        w2c[:3, :3] = np.stack([x, y, z])
        w2c[:3, 3] = -w2c[:3, :3] @ position
        cameras.append(OrbitCamera(w2c, K, centre, distance))
    return cameras


def render_preview_png(splat: SplatData, keep: np.ndarray, usable: np.ndarray, *,
                       panel: int = DEFAULT_PANEL, views: int = DEFAULT_VIEWS) -> bytes:
    """The preview sheet as PNG bytes.

    Args:
        splat: the capture (every row).
        keep: ``[N]`` bool, the kept rows (at least one).
        usable: ``[N]`` bool, the usable rows; removed = usable and not kept.
    """
    kept_rows = np.flatnonzero(keep)
    cameras = orbit_cameras(splat.means[kept_rows], views, panel)
    removed_rows = np.flatnonzero(usable & ~keep)
    removed_count = removed_rows.size
    offsets = splat.means[removed_rows].astype(np.float64) - cameras[0].centre
    within = np.einsum("ij,ij->i", offsets, offsets) <= cameras[0].distance ** 2
    removed_rows = removed_rows[within]
    parts = [gaussians_from_splat(splat, rows) for rows in (kept_rows, removed_rows)]
    width, height = sheet_size(panel, views)
    sheet = np.empty((height, width, 3), dtype=np.uint8)
    sheet[:] = _SHEET_BGR
    for row, camera in enumerate(cameras):
        top = HEADER_HEIGHT + PADDING + row * (panel + PADDING)
        for column, g in enumerate(parts):
            interrupt.checkpoint()
            left = PADDING + column * (panel + PADDING)
            rgb = _render(g, camera, panel)
            sheet[top:top + panel, left:left + panel] = rgb[:, :, ::-1]
    name = Path(splat.path).name
    _text(sheet, f"{name}: {splat.count:,} rows", (PADDING, 18), width - 2 * PADDING)
    titles = (f"kept {kept_rows.size:,}",
              f"removed {removed_count:,} ({removed_rows.size:,} within the orbit)")
    for column, title in enumerate(titles):
        _text(sheet, title, (PADDING + column * (panel + PADDING), 40), panel)
    ok, png = cv2.imencode(".png", sheet)
    if not ok:
        raise RuntimeError("OpenCV could not encode the preview sheet as PNG")
    return png.tobytes()


def _render(g: Gaussians, camera: OrbitCamera, panel: int) -> np.ndarray:
    """``[panel, panel, 3]`` uint8 RGB of the Gaussians ``g`` seen by one camera."""
    if g.count == 0:
        return np.broadcast_to(np.round(np.array(BACKGROUND_RGB) * 255).astype(np.uint8),
                               (panel, panel, 3)).copy()
    w2c = camera.world_to_camera
    position = torch.as_tensor(-w2c[:3, :3].T @ w2c[:3, 3], dtype=torch.float32)
    colours = gaussian_colors(g.sh, g.means, position)
    result = rasterize(g.means, g.quats, g.scales, g.opacities, colours,
                       torch.as_tensor(w2c, dtype=torch.float32),
                       torch.as_tensor(camera.K, dtype=torch.float32), panel, panel,
                       background=torch.tensor(BACKGROUND_RGB, dtype=torch.float32),
                       near=camera.distance * 1e-3)
    rgb = result.colors.clamp(0, 1).mul(255).round().to(torch.uint8)
    return rgb.numpy()


def _text(image: np.ndarray, text: str, origin: tuple[int, int], max_width: int) -> None:
    """Draw ``text`` at ``origin``, its font shrunk where needed to fit ``max_width`` px."""
    scale = 0.5
    width = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
    if width > max_width:
        scale *= max_width / width
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, _TEXT_BGR, 1,
                cv2.LINE_AA)
