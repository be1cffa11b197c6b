"""Side-by-side overlays of a rendered and a real frame (the paper's Fig. 4).

Layout of one overlay (pixels, BGR PNG): a title strip of ``TITLE_HEIGHT`` (which pair,
its rank and its figures), then three panels side by side, ``PANEL_GAP`` apart, each
under a label strip of ``LABEL_HEIGHT``: the rendered image, the real image, and the
difference heat map; right of the heat map a colour bar with its scale. Panels are the
images scaled to a width between ``MIN_PANEL_WIDTH`` and ``MAX_PANEL_WIDTH`` (nearest
neighbour when enlarged, area averaging when reduced). The heat map shows the per-pixel
absolute difference averaged over R, G and B, ``mean_c |rendered - real|`` in [0, 1],
through the inferno colour map from 0 (black) to ``vmax`` (pale yellow); larger values
get the top colour.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

TITLE_HEIGHT = 30
LABEL_HEIGHT = 22
PANEL_GAP = 8
MARGIN = 8
MIN_PANEL_WIDTH = 240
MAX_PANEL_WIDTH = 480
BAR_WIDTH = 16
BAR_LABEL_WIDTH = 56
BACKGROUND_BGR = (28, 24, 24)
TEXT_BGR = (230, 230, 230)
COLORMAP = cv2.COLORMAP_INFERNO
_FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_LABELS = ("rendered", "real", "|rendered - real|, mean over RGB")


def difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[H, W]`` float64: ``mean_c |x - y|`` of two ``[H, W, 3]`` images in [0, 1]."""
    return np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).mean(axis=2)


def heat_scale(differences: list[np.ndarray]) -> float:
    """The heat map's top value shared by a report's overlays: the largest 99.5th
    percentile of the given difference maps, rounded up to a multiple of 0.01 (at
    least 0.01), so one outlier pixel does not wash the maps out."""
    p = max(float(np.percentile(d, 99.5)) for d in differences)
    return max(0.01, math.ceil(p * 100 - 1e-9) / 100)


def panel_scale(width: int) -> float:
    """Factor from an image's width to its panel's width."""
    if width > MAX_PANEL_WIDTH:
        return MAX_PANEL_WIDTH / width
    if width < MIN_PANEL_WIDTH:
        return float(math.ceil(MIN_PANEL_WIDTH / width))
    return 1.0


def draw_overlay(rendered: np.ndarray, real: np.ndarray, title: str, vmax: float
                 ) -> np.ndarray:
    """``[H', W', 3]`` uint8 BGR overlay of two ``[H, W, 3]`` RGB images in [0, 1]."""
    h, w = rendered.shape[:2]
    s = panel_scale(w)
    pw, ph = max(1, round(w * s)), max(1, round(h * s))
    heat = _heat_bgr(difference(rendered, real), vmax)
    panels = [_to_bgr8(rendered), _to_bgr8(real), heat]
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST
    panels = [cv2.resize(p, (pw, ph), interpolation=interp) for p in panels]
    width = 2 * MARGIN + 3 * pw + 2 * PANEL_GAP + PANEL_GAP + BAR_WIDTH + BAR_LABEL_WIDTH
    height = TITLE_HEIGHT + LABEL_HEIGHT + ph + MARGIN
    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = BACKGROUND_BGR
    _text(sheet, title, (MARGIN, 20), 0.5, width - 2 * MARGIN)
    top = TITLE_HEIGHT + LABEL_HEIGHT
    for i, (panel, label) in enumerate(zip(panels, PANEL_LABELS, strict=True)):
        left = MARGIN + i * (pw + PANEL_GAP)
        sheet[top:top + ph, left:left + pw] = panel
        _text(sheet, label, (left, top - 6), 0.45, pw)
    _colour_bar(sheet, MARGIN + 3 * pw + 3 * PANEL_GAP, top, ph, vmax)
    return sheet


def _to_bgr8(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8),
                        cv2.COLOR_RGB2BGR)


def _heat_bgr(diff: np.ndarray, vmax: float) -> np.ndarray:
    levels = np.round(np.clip(diff / vmax, 0, 1) * 255).astype(np.uint8)
    return cv2.applyColorMap(levels, COLORMAP)


def _colour_bar(sheet: np.ndarray, left: int, top: int, height: int, vmax: float) -> None:
    """A vertical bar, ``vmax`` at the top and 0 at the bottom, with three ticks."""
    ramp = np.linspace(255, 0, height).round().astype(np.uint8)[:, None]
    bar = cv2.applyColorMap(np.repeat(ramp, BAR_WIDTH, axis=1), COLORMAP)
    sheet[top:top + height, left:left + BAR_WIDTH] = bar
    for fraction in (1.0, 0.5, 0.0):
        y = top + round((1 - fraction) * (height - 1))
        cv2.line(sheet, (left + BAR_WIDTH, y), (left + BAR_WIDTH + 3, y), TEXT_BGR, 1)
        baseline = min(max(y + 4, top + 10), top + height)
        _text(sheet, f"{fraction * vmax:.3f}", (left + BAR_WIDTH + 6, baseline), 0.4,
              BAR_LABEL_WIDTH - 6)


def _text(sheet: np.ndarray, text: str, origin: tuple[int, int], scale: float,
          max_width: int) -> None:
    """Draw ``text`` at ``origin`` (baseline), shrunk to fit ``max_width`` pixels."""
    (tw, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    if tw > max_width:
        scale *= max_width / tw
    cv2.putText(sheet, text, origin, _FONT, scale, TEXT_BGR, 1, cv2.LINE_AA)
