"""SuperSplat / PlayCanvas compressed PLY: 16 bytes per Gaussian plus per-chunk bounds.

Layout (as written by SuperSplat and by ``gsplat.exporter``):

* ``element chunk``: one row per 256 consecutive vertices (the last may hold fewer),
  float ``min_x min_y min_z max_x max_y max_z``, ``min_scale_x .. max_scale_z`` (log
  scales) and, in current files, ``min_r min_g min_b max_r max_g max_b`` (DC colour).
* ``element vertex``: four uint32 per Gaussian:
  ``packed_position`` 11/10/11 bits (x y z) of the position normalised in its chunk's box;
  ``packed_rotation`` 2 bits: index (in rot_0..3 = wxyz order) of the largest-magnitude
  component, which is dropped (the quaternion is flipped to make it positive and is
  recovered as ``sqrt(1 - a^2 - b^2 - c^2)``), then 3 x 10 bits of the other components
  in index order, each stored as ``c * sqrt(2)/2 + 0.5`` (they lie in [-1/sqrt2, 1/sqrt2]);
  ``packed_scale`` 11/10/11 bits of the log scales normalised in the chunk's range;
  ``packed_color`` 8/8/8/8 bits: r g b normalised in the chunk's colour range (or the
  colour itself, in files without colour bounds) and the opacity (after the sigmoid).
  Every field is packed as ``round(v * (2^bits - 1))``.
* optional ``element sh``: uchar ``f_rest_*`` (channel-major), ``q = trunc((f/8 + 0.5) * 256)``
  clamped to [0, 255].

Decoding (float64, rounded once to float32): fields are ``q / (2^bits - 1)`` and bounded
values are linearly interpolated between the chunk's min and max, so a position, log
scale or colour is off by at most half a step, ``(max - min) / (2 (2^bits - 1))``; the
opacity by at most 1/510. The three stored quaternion components are off by at most
``sqrt2 / 2046`` each. SH bytes decode to the centre of their bucket, ``(q + 0.5)/32 - 4``,
so SH coefficients in [-4, 4] are off by at most 1/64 (PlayCanvas maps 0 and 255 to -4
and 4 exactly instead, at most 1/32 off). Opacity bytes 0 and 255 are clamped into
[2^-126, 1 - 2^-24] like every opacity this package reads.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gs_contract.errors import InputError
from gs_contract.splats.data import SH_C0, SplatData, clamp_opacities, sh_degree_of_rest_count
from gs_contract.splats.ply import PlyElement, PlyHeader, read_ply_tables

CHUNK_SIZE = 256  # vertices per chunk row

PACKED_PROPERTIES = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
CHUNK_BOUNDS = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
)
CHUNK_COLOUR_BOUNDS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_OTHER_COMPONENTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def is_compressed_ply(header: PlyHeader) -> bool:
    """True when the header's vertex element holds SuperSplat ``packed_*`` properties."""
    vertex = header.element("vertex")
    return vertex is not None and "packed_position" in vertex.property_names


def unpack_unorm(packed: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """The ``bits``-wide field at ``shift`` of uint32 ``packed``, as a float64 in [0, 1]."""
    top = (1 << bits) - 1
    return ((packed >> np.uint32(shift)) & np.uint32(top)).astype(np.float64) / top


def unpack_111011(packed: np.ndarray) -> np.ndarray:
    """``[N]`` uint32 -> ``[N, 3]`` float64 in [0, 1] from 11, 10 and 11 bits."""
    return np.stack([unpack_unorm(packed, 21, 11), unpack_unorm(packed, 11, 10),
                     unpack_unorm(packed, 0, 11)], axis=1)


def unpack_8888(packed: np.ndarray) -> np.ndarray:
    """``[N]`` uint32 -> ``[N, 4]`` float64 in [0, 1] from four bytes, high byte first."""
    return np.stack([unpack_unorm(packed, s, 8) for s in (24, 16, 8, 0)], axis=1)


def unpack_rotation(packed: np.ndarray) -> np.ndarray:
    """``[N]`` uint32 -> ``[N, 4]`` float64 wxyz quaternions (unit up to quantisation)."""
    largest = (packed >> np.uint32(30)).astype(np.intp)
    kept = np.stack([unpack_unorm(packed, s, 10) for s in (20, 10, 0)], axis=1)
    kept = (kept - 0.5) * math.sqrt(2.0)  # undo c * sqrt(2)/2 + 0.5
    dropped = np.sqrt(np.maximum(0.0, 1.0 - np.sum(kept * kept, axis=1)))
    quats = np.empty((packed.shape[0], 4), dtype=np.float64)
    np.put_along_axis(quats, largest[:, None], dropped[:, None], axis=1)
    np.put_along_axis(quats, _OTHER_COMPONENTS[largest], kept, axis=1)
    return quats


def dequantize_sh(quantized: np.ndarray) -> np.ndarray:
    """uint8 SH bytes -> float64 coefficients at the centre of each 1/32-wide bucket."""
    return (quantized.astype(np.float64) + 0.5) / 32.0 - 4.0


def _require(element: PlyElement | None, name: str, properties: tuple[str, ...],
             source: str | Path) -> PlyElement:
    if element is None:
        raise InputError(source, None, f"compressed PLY without element '{name}'")
    missing = [p for p in properties if p not in element.property_names]
    if missing:
        plural = "property" if len(missing) == 1 else "properties"
        raise InputError(source, f"element {name}", f"missing {plural} {', '.join(missing)}")
    return element


def _sh_degree(sh: PlyElement | None, vertex_count: int, source: str | Path) -> int:
    if sh is None:
        return 0
    rest = [n for n in sh.property_names if n.startswith("f_rest_")]
    degree = sh_degree_of_rest_count(len(rest))
    if degree is None:
        raise InputError(source, "element sh", f"{len(rest)} f_rest properties fit no SH "
                         "degree (degrees 0, 1, 2, 3 need 0, 9, 24 or 45)")
    _require(sh, "sh", tuple(f"f_rest_{i}" for i in range(len(rest))), source)
    if sh.count != vertex_count:
        raise InputError(source, "element sh", f"has {sh.count} rows but element vertex "
                         f"has {vertex_count}")
    return degree


def read_compressed_ply(data: bytes, header: PlyHeader, source: str | Path, *,
                        dc_only: bool = False) -> SplatData:
    """Decode every row of a SuperSplat compressed PLY (``data``: the whole file).

    ``finite`` is False for the rows of a chunk with non-finite bounds (the SH bytes
    cannot be non-finite). With ``dc_only`` the ``sh`` element is not decoded.
    """
    vertex = _require(header.element("vertex"), "vertex", PACKED_PROPERTIES, source)
    chunk = _require(header.element("chunk"), "chunk", CHUNK_BOUNDS, source)
    has_colour_bounds = any(n in chunk.property_names for n in CHUNK_COLOUR_BOUNDS)
    if has_colour_bounds:
        _require(chunk, "chunk", CHUNK_COLOUR_BOUNDS, source)
    for name in PACKED_PROPERTIES:
        prop = vertex.property(name)
        if prop is not None and (prop.is_list or prop.type_code[0] not in "iu"):
            raise InputError(source, f"property {name}", "must be an integer (uint)")
    n = vertex.count
    expected_chunks = -(-n // CHUNK_SIZE)
    if chunk.count != expected_chunks:
        raise InputError(source, "element chunk", f"has {chunk.count} rows, but "
                         f"{n} vertices in chunks of {CHUNK_SIZE} need {expected_chunks}")
    sh_element = header.element("sh")
    degree = _sh_degree(sh_element, n, source)
    wanted = ["chunk", "vertex"] + (["sh"] if sh_element is not None else [])
    tables = read_ply_tables(data, header, wanted, source)

    bound_names = CHUNK_BOUNDS + (CHUNK_COLOUR_BOUNDS if has_colour_bounds else ())
    bounds = tables["chunk"].columns(bound_names, np.float64)[np.arange(n) // CHUNK_SIZE]
    finite = np.isfinite(bounds).all(axis=1)
    packed = tables["vertex"].columns(PACKED_PROPERTIES, np.uint32)

    def lerp(lo: int, fractions: np.ndarray) -> np.ndarray:
        low, high = bounds[:, lo:lo + 3], bounds[:, lo + 3:lo + 6]
        return low + (high - low) * fractions

    with np.errstate(invalid="ignore", over="ignore"):
        means = lerp(0, unpack_111011(packed[:, 0])).astype(np.float32)
        scales = np.exp(lerp(6, unpack_111011(packed[:, 2]))).astype(np.float32)
        colour = unpack_8888(packed[:, 3])
        rgb = lerp(12, colour[:, :3]) if has_colour_bounds else colour[:, :3]
        k = 1 if dc_only else (degree + 1) ** 2
        sh = np.empty((n, k, 3), dtype=np.float32)
        sh[:, 0, :] = (rgb - 0.5) / SH_C0
    if k > 1:
        rest = tables["sh"].columns([f"f_rest_{i}" for i in range(3 * (k - 1))], np.uint8)
        sh[:, 1:, :] = dequantize_sh(rest).reshape(n, 3, k - 1).transpose(0, 2, 1)
    finite &= np.isfinite(means).all(axis=1) & np.isfinite(scales).all(axis=1)
    finite &= np.isfinite(sh[:, 0, :]).all(axis=1)
    return SplatData(
        path=str(source), format="compressed_ply",
        means=means,
        quats=unpack_rotation(packed[:, 1]).astype(np.float32),
        scales=scales,
        opacities=clamp_opacities(colour[:, 3]),
        sh=sh, sh_degree=degree, finite=finite, encoding=header.encoding,
    )
