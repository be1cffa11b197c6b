"""The visible-instance map: which instrument instance each pixel shows.

The renderer composites one weight channel per instrument instance next to the
RGB image (DESIGN contract 3): channel k holds the accumulated alpha-blending
weight of the Gaussians of instance k (all its parts), so it is the share of the
pixel's colour that instance contributed. A pixel shows instance k when k has the
largest weight and that weight reaches the mask threshold (contract 4)."""

from __future__ import annotations

import cv2
import numpy as np

MAX_INSTANCES = int(np.iinfo(np.uint16).max)  # ids must fit the uint16 mask PNG
_CV_MAX_CHANNELS = 512  # cv2.split handles at most this many channels


def visible_instance_map(
    weights: np.ndarray,  # [H, W, K] float, channel k is instance id k + 1
    threshold: float,
) -> np.ndarray:  # [H, W] uint16, 0 = no instrument
    """Label each pixel with the instrument instance that dominates it.

    A pixel gets id ``k + 1`` when channel ``k`` holds its largest weight and
    that weight is ``>= threshold``; otherwise it gets 0. Ties go to the lowest
    id (the first channel holding the maximum), so the result never depends on
    floating-point noise between equal weights. The comparison with
    ``threshold`` happens in float32, the precision the renderer works in. A
    NaN weight counts as 0.

    Args:
        weights: ``[H, W, K]`` per-instance weights; ``K`` may be 0, which
            gives an all-zero map. Any real dtype; read as float32.
        threshold: minimum weight for a pixel to count as visible (the
            scenario's ``mask_threshold``).

    Returns:
        ``[H, W]`` uint16 instance map.
    """
    if weights.ndim != 3:
        raise ValueError(f"weights must be [H, W, K], got shape {weights.shape}")
    h, w, k = weights.shape
    if k > MAX_INSTANCES:
        raise ValueError(f"{k} instances do not fit a uint16 instance map")
    if k == 0 or h == 0 or w == 0:
        return np.zeros((h, w), np.uint16)
    weights = np.asarray(weights, dtype=np.float32)
    cut = np.float32(threshold)

    channels = _split_channels(weights)
    best = channels[0]
    ids = np.ones((h, w), np.uint16)
    for index in range(1, k):
        channel = channels[index]
        # Strictly greater: on a tie the earlier (lower) id keeps the pixel.
        wins = cv2.compare(channel, best, cv2.CMP_GT)
        best = cv2.max(best, channel)
        cv2.copyTo(np.full((h, w), index + 1, np.uint16), wins, ids)
    visible = np.greater_equal(best, cut).view(np.uint8)
    return cv2.bitwise_and(ids, ids, mask=visible)


def _split_channels(weights: np.ndarray) -> list[np.ndarray]:
    """``[H, W, K]`` float32 -> K contiguous ``[H, W]`` planes with NaN replaced by 0.

    The planes are fresh copies (one pass with OpenCV), so patching them in
    place never touches the caller's array.
    """
    k = weights.shape[2]
    if k == 1 or not weights.flags.c_contiguous:
        # A view of wider planes (the renderer's RGB + weights): copying each channel
        # out is ~6x faster than making the view contiguous for cv2.split.
        planes = [weights[..., i].copy() for i in range(k)]
    elif k <= _CV_MAX_CHANNELS:
        # Preallocated outputs: letting cv2.split allocate is ~10x slower on large frames.
        planes = [np.empty(weights.shape[:2], np.float32) for _ in range(k)]
        cv2.split(np.ascontiguousarray(weights), planes)
    else:
        planes = [weights[..., i].copy() for i in range(k)]
    for plane in planes:
        cv2.patchNaNs(plane, 0.0)
    return planes
