"""COCO run-length encoding of binary masks, byte-identical to pycocotools.

pycocotools (``mask.encode``) is what every COCO reader uses, but the backend
does not depend on it; this is an independent numpy implementation of the same
format, checked against pycocotools in the tests.

Format: the mask is read in column-major order (down the first column, then
the next); ``counts`` are the lengths of the alternating runs, starting with a
run of zeros (length 0 when the first pixel is set). The compressed string
writes each count ``x`` (for the 4th count on, ``x`` minus the count two
before it) as little-endian groups of 5 bits, one character per group: the
group plus ``0x20`` when more groups follow, plus 48; the last group's ``0x10``
bit carries the sign.
"""

from __future__ import annotations

import cv2
import numpy as np

_MAX_GROUPS = 8  # 5-bit groups of a signed 64-bit-safe count; counts < 2**35 need 7


def rle_encode(mask: np.ndarray) -> dict:  # [H, W] bool -> {"size", "counts"}
    """Compressed COCO RLE of a binary mask.

    Args:
        mask: ``[H, W]``, nonzero = set.

    Returns:
        ``{"size": [H, W], "counts": str}``, the same as pycocotools'
        ``mask.encode(np.asfortranarray(mask.astype(np.uint8)))`` with ``counts``
        decoded to ``str`` (JSON-ready; pycocotools reads both).
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": rle_string(rle_counts(mask))}


def rle_counts(mask: np.ndarray) -> np.ndarray:  # [H, W] -> [R] int64
    """Uncompressed COCO run lengths: alternating zeros / ones, column-major, zeros first."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    if mask.size == 0:
        return np.zeros(1, np.int64)
    binary = mask.view(np.uint8) if mask.dtype == bool else (mask != 0).view(np.uint8)
    column_major = cv2.transpose(np.ascontiguousarray(binary)).ravel()  # [W * H]
    changes = np.flatnonzero(column_major[1:] != column_major[:-1]) + 1
    edges = np.concatenate(([0], changes, [column_major.size]))
    runs = np.diff(edges)
    if column_major[0]:
        runs = np.concatenate(([0], runs))
    return runs.astype(np.int64)


def rle_string(counts: np.ndarray) -> str:  # [R] int -> str
    """pycocotools' compressed string for run lengths ``counts`` (``rleToString``)."""
    counts = np.asarray(counts, np.int64)
    values = counts.copy()
    values[3:] -= counts[1:-2]  # from the 4th count on, store the change against two back
    groups = np.zeros((values.size, _MAX_GROUPS), np.uint8)  # characters, row = one count
    emitted = np.zeros((values.size, _MAX_GROUPS), bool)
    active = np.ones(values.size, bool)
    for g in range(_MAX_GROUPS):
        if not active.any():
            break
        low = values & 0x1F
        values = values >> 5  # arithmetic shift: negative values tend to -1
        more = np.where(low & 0x10, values != -1, values != 0)
        groups[:, g] = (low | np.where(more, 0x20, 0)) + 48
        emitted[:, g] = active
        active &= more
    if active.any():
        raise ValueError("run length too large for COCO RLE")
    return groups[emitted].tobytes().decode("ascii")
