"""evaluate's PSNR and SSIM against scikit-image, the independent oracle (DESIGN contract 9).

scikit-image's ``structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)`` and
``peak_signal_noise_ratio(..., data_range=1)`` on random, structured, quantised and
odd-sized images; the masked figures against scikit-image's full SSIM map and its PSNR
of the masked pixels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gs_backend.evaluate.metrics import ImageTooSmall, psnr, ssim, ssim_map


def sk_ssim(x: np.ndarray, y: np.ndarray, **kw) -> float:
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1,
                                 channel_axis=-1, **kw)


def noisy(rng: np.random.Generator, x: np.ndarray, sigma: float) -> np.ndarray:
    return np.clip(x + rng.normal(0, sigma, x.shape), 0, 1)


def structured(h: int, w: int) -> np.ndarray:
    """Gradients, a checkerboard, a flat patch and a hard edge in one RGB image."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1),
                    ((xx // 4 + yy // 4) % 2)], axis=-1)
    img[: h // 3, : w // 3] = 0.5
    img[:, w // 2:, 0] = 1.0
    return img


@pytest.mark.parametrize("shape", [(11, 11), (11, 30), (12, 17), (31, 13), (64, 80),
                                   (239, 321)])
@pytest.mark.parametrize("sigma", [0.01, 0.1, 0.4])
def test_random_images_match_scikit_image(shape, sigma):
    rng = np.random.default_rng([*shape, round(sigma * 100)])
    x = rng.random((*shape, 3))
    y = noisy(rng, x, sigma)
    assert ssim(x, y) == pytest.approx(sk_ssim(x, y), abs=1e-12)
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1), abs=1e-10)


@pytest.mark.parametrize("shape", [(11, 11), (37, 53), (120, 160)])
def test_structured_and_degraded_images_match_scikit_image(shape):
    rng = np.random.default_rng(1)
    x = structured(*shape)
    cases = {
        "colour cast": np.clip(x * [1.1, 0.95, 0.9] + 0.02, 0, 1),
        "shifted": np.roll(x, 2, axis=1),
        "flat against structure": np.full_like(x, 0.5),
        "inverted": 1 - x,
        "noise": noisy(rng, x, 0.05),
    }
    for name, y in cases.items():
        assert ssim(x, y) == pytest.approx(sk_ssim(x, y), abs=1e-12), name
        assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1),
                                           abs=1e-10), name


def test_quantised_8_bit_images_match_scikit_image_on_0_1_floats():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    x, y = a / 255.0, b / 255.0
    assert ssim(x, y) == pytest.approx(sk_ssim(x, y), abs=1e-12)
    # scikit-image's own uint8 path (data range 255) gives the same numbers
    assert ssim(x, y) == pytest.approx(
        structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=255, channel_axis=-1),
        abs=1e-12)
    assert psnr(x, y) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)


def test_identical_images():
    x = structured(20, 30)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-15)
    assert psnr(x, x) == math.inf  # scikit-image also says inf (with a warning)


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (10, 40), (40, 10)])
def test_images_under_the_window_are_refused_like_scikit_image(shape):
    x = np.zeros((*shape, 3))
    with pytest.raises(ImageTooSmall, match="11x11"):
        ssim(x, x)
    with pytest.raises(ValueError, match="win_size exceeds image extent"):
        sk_ssim(x, x)


def test_ssim_map_is_scikit_images_map_without_its_border():
    rng = np.random.default_rng(3)
    x = rng.random((30, 41, 3))
    y = noisy(rng, x, 0.1)
    _, full = sk_ssim(x, y, full=True)
    assert ssim_map(x, y).shape == (20, 31, 3)
    np.testing.assert_allclose(ssim_map(x, y), full[5:-5, 5:-5], atol=1e-12)


def test_masked_figures():
    rng = np.random.default_rng(4)
    x = rng.random((40, 50, 3))
    y = noisy(rng, x, 0.1)
    y[:, 25:] = noisy(rng, x[:, 25:], 0.3)  # the right half differs more
    mask = np.zeros((40, 50), bool)
    mask[2:30, 20:48] = True
    _, full = sk_ssim(x, y, full=True)
    centres = mask.copy()
    centres[:5], centres[-5:], centres[:, :5], centres[:, -5:] = False, False, False, False
    assert ssim(x, y, mask) == pytest.approx(full[centres].mean(), abs=1e-12)
    assert psnr(x, y, mask) == pytest.approx(
        peak_signal_noise_ratio(x[mask], y[mask], data_range=1), abs=1e-10)
    # the masked figures see the worse half more
    assert psnr(x, y, mask) < psnr(x, y)
    # no masked pixel, or none at a window centre
    empty = np.zeros((40, 50), bool)
    assert psnr(x, y, empty) is None and ssim(x, y, empty) is None
    border = np.zeros((40, 50), bool)
    border[:3] = True
    assert ssim(x, y, border) is None
    assert psnr(x, y, border) == pytest.approx(
        peak_signal_noise_ratio(x[border], y[border], data_range=1), abs=1e-10)
