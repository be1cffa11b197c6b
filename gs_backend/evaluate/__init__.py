"""``gs-backend evaluate``: realism of rendered frames against real ones (DESIGN contract 9,
docs/evaluate.md). PSNR and SSIM in :mod:`~gs_backend.evaluate.metrics`, LPIPS in
:mod:`~gs_backend.evaluate.lpips` (imports torch; loaded only when weights are given)."""

from gs_backend.evaluate.images import Pair, Pairing, find_images, pair_images, read_mask, read_rgb
from gs_backend.evaluate.metrics import ImageTooSmall, psnr, ssim, ssim_map
from gs_backend.evaluate.report import FrameResult, statistics

__all__ = ["FrameResult", "ImageTooSmall", "Pair", "Pairing", "find_images", "pair_images",
           "psnr", "read_mask", "read_rgb", "ssim", "ssim_map", "statistics"]
