"""Compiled stable sorts for the numba rasterizer: float64 keys as ordered integers,
and a segmented sort (each segment sorted on its own, segments in parallel).

A tile's list is a segment: sorting its ~2,000 entries in the tile's own
(cache-resident) scratch is cheaper than one global depth sort followed by a
scattered walk of the splats in depth order.
"""

from __future__ import annotations

import numba
import numpy as np

from gs_backend.raster.numba_cache import ensure_cache_location

ensure_cache_location()

_SIGN = np.uint64(1 << 63)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_DIGIT_BITS = 8
_DIGITS = 64 // _DIGIT_BITS
_BUCKETS = 1 << _DIGIT_BITS
_MASK = np.uint64(_BUCKETS - 1)
INSERTION_MAX = 24
"""Segments and buckets up to this long are sorted by insertion (radix passes cost more)."""
MAX_BUCKET_BITS = 16
"""The most-significant-digit pass uses at most 2**16 buckets."""


@numba.njit(cache=True, inline="always")
def depth_key(bits: np.uint64) -> np.uint64:
    """The bits of a float64 (not NaN) as a uint64 with the same order: ``a < b`` as
    floats iff ``key(a) < key(b)``; ``-0.0`` and ``0.0`` get the same key."""
    if bits == _SIGN:  # -0.0
        bits = np.uint64(0)
    if bits & _SIGN:
        return bits ^ _ALL
    return bits | _SIGN


@numba.njit(parallel=True, cache=True)
def sort_segments(
    offsets: np.ndarray,  # [S + 1] int64: segment s is [offsets[s], offsets[s + 1])
    order: np.ndarray,  # [S] int64: the order segments are handed to threads
    keys: np.ndarray,  # [V] uint64: the key of each value
    values: np.ndarray,  # [P] int32 or int64 in [0, V)
    out: np.ndarray,  # [P] int64, written: each segment's values by key, stable
) -> None:
    """Stable sort of every segment's values by their keys ``keys[value]`` (ties keep
    their order).

    One most-significant-digit pass over the segment's key range into about two
    buckets per key, then one insertion pass over the segment when every bucket is
    short, else each bucket on its own (by insertion or by an LSD radix sort).
    Values that are nearby rows (a tile's splats) read nearby keys.
    """
    for s in numba.prange(order.shape[0]):
        start, end = offsets[order[s]], offsets[order[s] + 1]
        n = end - start
        segment_values = values[start:end].copy()
        segment_keys = np.empty(n, dtype=np.uint64)
        for j in range(n):
            segment_keys[j] = keys[segment_values[j]]
        if n <= INSERTION_MAX:
            _insertion_sort(segment_keys, segment_values, 0, n, out, start)
        else:
            _bucket_sort(segment_keys, segment_values, out, start)


@numba.njit(cache=True)
def _insertion_sort(keys: np.ndarray, values: np.ndarray, start: int, end: int,
                    out: np.ndarray, out_start: int) -> None:
    """Stable in-place insertion sort of ``keys[start:end]`` (``values`` alongside), the
    values then copied to ``out[out_start:]``."""
    for j in range(start + 1, end):
        key, value = keys[j], values[j]
        at = j
        while at > start and keys[at - 1] > key:
            keys[at] = keys[at - 1]
            values[at] = values[at - 1]
            at -= 1
        keys[at] = key
        values[at] = value
    for j in range(start, end):
        out[out_start + j - start] = values[j]


@numba.njit(cache=True)
def _bit_length(x: np.uint64) -> int:
    n = 0
    while x:
        x >>= np.uint64(1)
        n += 1
    return n


@numba.njit(cache=True)
def _bucket_sort(keys: np.ndarray, values: np.ndarray, out: np.ndarray,
                 out_start: int) -> None:
    """Stable sort of ``values`` by ``keys`` into ``out[out_start:]``: an MSD pass on the
    top bits of ``key - min``, then insertion (or LSD radix for a long bucket)."""
    n = keys.shape[0]
    lo = keys[0]
    hi = keys[0]
    for j in range(1, n):
        lo = min(lo, keys[j])
        hi = max(hi, keys[j])
    if lo == hi:
        out[out_start:out_start + n] = values
        return
    digit_bits = min(max(_bit_length(np.uint64(n)) + 1, 1), MAX_BUCKET_BITS)
    shift = np.uint64(max(_bit_length(hi - lo) - digit_bits, 0))
    n_buckets = 1 << digit_bits
    slot = np.zeros(n_buckets + 1, dtype=np.int64)
    for j in range(n):
        slot[((keys[j] - lo) >> shift) + np.uint64(1)] += 1
    largest = 0
    for b in range(n_buckets):
        largest = max(largest, slot[b + 1])
        slot[b + 1] += slot[b]
    bucket_keys = np.empty(n, dtype=np.uint64)
    bucket_values = np.empty(n, dtype=values.dtype)
    cursor = slot[:n_buckets].copy()
    for j in range(n):
        b = (keys[j] - lo) >> shift
        k = cursor[b]
        cursor[b] = k + 1
        bucket_keys[k] = keys[j]
        bucket_values[k] = values[j]
    if largest <= INSERTION_MAX:
        # Every key is at most INSERTION_MAX - 1 places from its place: one insertion
        # pass over the whole segment costs no more than one per bucket, without a
        # branch per bucket.
        _insertion_sort(bucket_keys, bucket_values, 0, n, out, out_start)
        return
    for b in range(n_buckets):
        first, last = slot[b], slot[b + 1]
        if last - first <= INSERTION_MAX:
            _insertion_sort(bucket_keys, bucket_values, first, last, out, out_start + first)
        else:
            _radix_sort(bucket_keys, bucket_values, first, last, out, out_start + first)


@numba.njit(cache=True)
def _radix_sort(keys: np.ndarray, values: np.ndarray, start: int, end: int,
                out: np.ndarray, out_start: int) -> None:
    """Stable LSD radix sort of ``keys[start:end]`` (``values`` alongside) into
    ``out[out_start:]``, 8 bits a pass; a digit that all keys share is skipped."""
    n = end - start
    hist = np.zeros((_DIGITS, _BUCKETS), dtype=np.int64)
    for j in range(start, end):
        key = keys[j]
        for d in range(_DIGITS):
            hist[d, (key >> np.uint64(_DIGIT_BITS * d)) & _MASK] += 1
    src_keys = keys[start:end].copy()
    src_values = values[start:end].copy()
    dst_keys = np.empty(n, dtype=np.uint64)
    dst_values = np.empty(n, dtype=values.dtype)
    slot = np.empty(_BUCKETS, dtype=np.int64)
    for d in range(_DIGITS):
        shift = np.uint64(_DIGIT_BITS * d)
        if hist[d, (src_keys[0] >> shift) & _MASK] == n:
            continue
        total = 0
        for b in range(_BUCKETS):
            slot[b] = total
            total += hist[d, b]
        for j in range(n):
            key = src_keys[j]
            b = (key >> shift) & _MASK
            dst_keys[slot[b]] = key
            dst_values[slot[b]] = src_values[j]
            slot[b] += 1
        src_keys, dst_keys = dst_keys, src_keys
        src_values, dst_values = dst_values, src_values
    out[out_start:out_start + n] = src_values
