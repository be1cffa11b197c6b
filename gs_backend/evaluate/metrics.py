"""PSNR and SSIM of two RGB images in [0, 1] (DESIGN contract 9), optionally over a mask.

Definitions (float64 throughout; ``x``, ``y`` are ``[H, W, 3]`` arrays in [0, 1]):

- PSNR = 10 log10(1 / MSE), MSE over all pixels and channels (data range 1). Identical
  images have MSE 0 and PSNR ``inf`` (the caller decides how to report it).
- SSIM (Wang et al. 2004): per channel, Gaussian-weighted local means, variances and
  covariance over an 11x11 window (sigma 1.5, weights ``exp(-d^2 / 2 sigma^2)`` for
  d = -5..5, normalised; population (not sample) covariance),
  ``S = (2 mx my + C1)(2 sxy + C2) / ((mx^2 + my^2 + C1)(sx^2 + sy^2 + C2))`` with
  ``C1 = (0.01)^2``, ``C2 = (0.03)^2``. The image's SSIM is the mean of ``S`` over the
  window positions that lie wholly inside the image (the ``(H-10) x (W-10)`` window
  centres), averaged over the three channels. This is exactly the number scikit-image's
  ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)`` gives (it filters the
  whole image and then crops 5 pixels off each border, which leaves these positions).
  Images under 11 pixels on a side have no such position: :class:`ImageTooSmall`.
- Over a mask (``[H, W]`` bool, e.g. instrument pixels): PSNR from the MSE over the
  masked pixels only; SSIM as the mean of the SSIM map at the masked window centres
  (masked pixels 5 or more pixels from every border), averaged over channels. ``None``
  when no pixel qualifies.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window: int(3.5 * sigma + 0.5), as scipy's truncate=3.5 gives
SSIM_WINDOW = 2 * SSIM_RADIUS + 1
SSIM_K1 = 0.01
SSIM_K2 = 0.03


class ImageTooSmall(ValueError):
    """An image smaller than the SSIM window on some side."""


def psnr(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """PSNR in dB (data range 1) of ``[H, W, C]`` images, over ``mask`` (``[H, W]`` bool)
    when given; ``inf`` for identical pixels, ``None`` for an empty mask."""
    diff = np.asarray(x, np.float64) - np.asarray(y, np.float64)
    if mask is not None:
        if not mask.any():
            return None
        diff = diff[mask]
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def gaussian_window() -> np.ndarray:
    """``[11]`` float64: the normalised 1D Gaussian (sigma 1.5) whose outer product is
    the SSIM window."""
    d = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    w = np.exp(-(d * d) / (2.0 * SSIM_SIGMA ** 2))
    return w / w.sum()


def ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[H-10, W-10, C]`` float64: SSIM at every window centre that keeps the 11x11
    window inside the image (row i, column j is image pixel (i+5, j+5)).

    Raises:
        ImageTooSmall: a side shorter than 11 pixels.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    h, w = x.shape[:2]
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ImageTooSmall(f"is {w}x{h}: SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window needs "
                            f"images at least {SSIM_WINDOW} pixels on each side")
    g = gaussian_window()

    def blur(a: np.ndarray) -> np.ndarray:
        # separable weighted sum, then keep the centres whose window lies inside the image
        # (the border handling of correlate1d never reaches them)
        a = correlate1d(correlate1d(a, g, axis=0, mode="constant"), g, axis=1, mode="constant")
        return a[SSIM_RADIUS:h - SSIM_RADIUS, SSIM_RADIUS:w - SSIM_RADIUS]

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    return ((2.0 * mx * my + c1) * (2.0 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """SSIM of ``[H, W, C]`` images averaged over channels; over ``mask`` (``[H, W]``
    bool) when given, ``None`` when no masked pixel is a window centre.

    Raises:
        ImageTooSmall: a side shorter than 11 pixels.
    """
    s = ssim_map(x, y)
    if mask is None:
        return float(s.mean())
    r = SSIM_RADIUS
    inner = np.asarray(mask, bool)[r:mask.shape[0] - r, r:mask.shape[1] - r]
    if not inner.any():
        return None
    return float(s[inner].mean())
