"""Niantic ``.spz``: quantised Gaussians, compressed (read only, versions 1-4).

Written from the format's documentation and reference implementation
(github.com/nianticlabs/spz, MIT). Two containers:

* **Versions 1-3**: one gzip stream holding a 16-byte header (little-endian ``magic``
  ``"NGSP"``, ``u32 version``, ``u32 numPoints``, ``u8 shDegree``, ``u8 fractionalBits``,
  ``u8 flags``, ``u8 reserved``) and then the attribute arrays one after the other:
  positions, alphas, colours, scales, rotations, SH, then extension records if flag 0x2.
* **Version 4** (current): starts with ``"NGSP"`` (not gzip); a 32-byte plain header
  (``magic``, ``u32 version``, ``u32 numPoints``, ``u8 shDegree``, ``u8 fractionalBits``,
  ``u8 flags``, ``u8 numStreams``, ``u32 tocByteOffset``, 12 reserved bytes), extension
  records in ``[32, tocByteOffset)``, a table of contents of ``numStreams`` pairs
  ``(u64 compressed size, u64 uncompressed size)``, then one Zstandard frame per
  non-empty attribute array, in the same order as above.

Attribute arrays, per Gaussian (N of each):

* positions: 3 x 24-bit signed little-endian fixed point, ``value / 2^fractionalBits``
  (version 1: 3 x float16);
* alphas: ``u8``, opacity ``a / 255`` (the sigmoid already applied; 0 and 255 are clamped
  into [2^-126, 1 - 2^-24] as for every format here);
* colours: 3 x ``u8``, DC coefficient ``(c / 255 - 0.5) / 0.15``;
* scales: 3 x ``u8``, log scale ``s / 16 - 10``;
* rotations: version 3+: "smallest three", a little-endian ``u32`` whose top 2 bits give
  the index (in x y z w order) of the largest component, then for the other components,
  from w down to x, 10 bits each (low 9: magnitude ``m``, value ``m / 511 / sqrt 2``;
  bit 9: sign); the largest is ``sqrt(1 - sum of squares)``. Versions 1-2: 3 x ``u8``
  ``x y z = b / 127.5 - 1``, ``w = sqrt(1 - x^2 - y^2 - z^2)`` (non-negative);
* SH: ``(d + 1)^2 - 1`` coefficients x 3 channels as ``u8``, coefficient-major with the
  channel fastest (unlike the Inria PLY), ``(b - 128) / 128``. Degrees 0-3 are read;
  degree 4 (also allowed by the format) is refused.

Flag 0x1 marks a splat trained with anti-aliasing (reported as ``antialiased``).

**Coordinate axes.** Inria PLY files use x right, y down, z forward (RDF); ``.spz`` stores
x right, y up, z back (RUB, the OpenGL / three.js axes) unless the
``SPZ_ADOBE_coordinate_system`` extension (type ``0xADBE0003``, payload ``u32``) names
another axis system. This reader returns the Inria PLY axes, like the reference
``spz_to_ply`` tool: for each axis whose direction differs, that coordinate of the
mean flips sign; the quaternion's x, y, z components are multiplied by ``(fy fz, fx fz,
fx fy)`` (w unchanged), which conjugates the rotation by the axis flip; and each SH
coefficient is multiplied by the product of the flips of the axes that appear with an
odd power in its basis function (``y, z, x`` for band 1, ``xy, yz, -, xz, -`` for band 2,
``y, xyz, y, z, x, z, x`` for band 3), so the colour seen along a direction is unchanged.
The "rotated" axis systems (LFD ... RBU), which need a 90-degree rotation, are refused.

Version 4 needs a Zstandard decoder: Python 3.14's ``compression.zstd`` or the
``zstandard`` package (Blender ships it; the backend depends on it).
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gs_contract.errors import InputError
from gs_contract.splats.data import SplatData, clamp_opacities, scales_from_log

SPZ_MAGIC = b"NGSP"
GZIP_MAGIC = b"\x1f\x8b"
COLOUR_SCALE = 0.15
NGSP_HEADER = struct.Struct("<4sIIBBBBI12s")  # version 4: 32 bytes
LEGACY_HEADER = struct.Struct("<4sIIBBBB")  # versions 1-3, inside the gzip stream: 16 bytes
TOC_ENTRY = struct.Struct("<QQ")
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
COORDINATE_SYSTEM_EXTENSION = 0xADBE0003
LATEST_VERSION = 4
# Axis systems by their number in SPZ_ADOBE_coordinate_system (0 = unspecified = RUB).
AXIS_SYSTEMS = ("RUB", "LDB", "RDB", "LUB", "RUB", "LDF", "RDF", "LUF", "RUF",
                "LFD", "RFD", "LFU", "RFU", "LBD", "RBD", "LBU", "RBU")
# Axes with an odd power in each SH basis function of bands 1-3 (gsplat / Inria order).
SH_ODD_AXES = ("y", "z", "x", "xy", "yz", "", "xz", "", "y", "xyz", "y", "z", "x", "z", "x")
# Largest plausible expansion of compressed data (zstd's own loader uses 1024; deflate
# cannot exceed 1032), to refuse headers that claim far more points than the file holds.
_MAX_RATIO = 1032
_MAX_EXTENSION_BYTES = 1 << 20


def is_spz(data: bytes) -> bool:
    """True for data that starts like a ``.spz`` (version 4 magic, or gzip for 1-3)."""
    return data[:4] == SPZ_MAGIC or data[:2] == GZIP_MAGIC


def _stream_sizes(n: int, degree: int, version: int) -> list[tuple[str, int]]:
    """Bytes of each attribute array, in file order."""
    return [
        ("positions", n * (6 if version == 1 else 9)),
        ("alphas", n),
        ("colours", 3 * n),
        ("scales", 3 * n),
        ("rotations", n * (4 if version >= 3 else 3)),
        ("sh", n * 3 * ((degree + 1) ** 2 - 1)),
    ]


def _check_header(version: int, n: int, degree: int, compressed_size: int,
                  source: str | Path) -> None:
    if not 1 <= version <= LATEST_VERSION:
        raise InputError(source, "header", f"unsupported .spz version {version} "
                         f"(versions 1-{LATEST_VERSION} are read)")
    if degree > 3:
        raise InputError(source, "header", f"SH degree {degree} is not supported "
                         "(degrees 0-3 are)")
    if n * 9 > compressed_size * _MAX_RATIO:
        raise InputError(source, "header", f"claims {n} Gaussians, more than a "
                         f"{compressed_size}-byte .spz can hold: the file is corrupt")


def read_spz(data: bytes, source: str | Path, *, dc_only: bool = False) -> SplatData:
    """Decode every row of a ``.spz`` file (``data``: the whole file), in Inria PLY axes.

    Raises:
        InputError: one line naming the file and what is wrong (bad magic, unsupported
            version or SH degree, truncated or corrupt compressed data, sizes that do not
            match the header, an axis system that cannot be converted).
    """
    if data[:4] == SPZ_MAGIC:
        return _read_version_4(data, source, dc_only)
    if data[:2] == GZIP_MAGIC:
        return _read_gzip(data, source, dc_only)
    raise InputError(source, None, "not a .spz file: it starts neither with 'NGSP' "
                     "(version 4) nor with the gzip magic (versions 1-3)")


def _read_version_4(data: bytes, source: str | Path, dc_only: bool) -> SplatData:
    if len(data) < NGSP_HEADER.size:
        raise InputError(source, "header", f"truncated file: {len(data)} bytes, shorter "
                         f"than the {NGSP_HEADER.size}-byte .spz header")
    _, version, n, degree, fractional, flags, streams, toc, _ = NGSP_HEADER.unpack_from(data)
    if version < 4:
        raise InputError(source, "header", f"version {version} with a version-4 header: "
                         "versions 1-3 are gzip-compressed")
    _check_header(version, n, degree, len(data), source)
    expected = [(name, size) for name, size in _stream_sizes(n, degree, version) if size]
    toc_end = toc + streams * TOC_ENTRY.size
    if toc < NGSP_HEADER.size or toc_end > len(data):
        raise InputError(source, "header", f"the table of contents ({streams} streams at "
                         f"byte {toc}) lies outside the {len(data)}-byte file")
    if streams != len(expected):
        raise InputError(source, "header", f"{streams} streams, but {n} Gaussians of SH "
                         f"degree {degree} need {len(expected)}")
    extensions = data[NGSP_HEADER.size:toc] if flags & FLAG_EXTENSIONS else b""
    decompress = _zstd_decompressor(source)
    arrays = {name: b"" for name, _ in _stream_sizes(n, degree, version)}  # empty: no stream
    offset = toc_end
    for i, (name, size) in enumerate(expected):
        packed, unpacked = TOC_ENTRY.unpack_from(data, toc + i * TOC_ENTRY.size)
        if unpacked != size:
            raise InputError(source, f"stream {name}", f"the table of contents gives "
                             f"{unpacked} bytes, but {n} Gaussians need {size}")
        if packed > len(data) - offset:
            raise InputError(source, f"stream {name}", f"truncated file: {packed} compressed "
                             f"bytes declared, {len(data) - offset} left")
        arrays[name] = decompress(data[offset:offset + packed], size, f"stream {name}")
        offset += packed
    if offset != len(data):
        raise InputError(source, "body", f"{len(data) - offset} bytes follow the last "
                         "stream: the file is corrupt")
    return _decode(arrays, n, degree, version, fractional, flags, extensions, source,
                   dc_only, "zstd")


def _read_gzip(data: bytes, source: str | Path, dc_only: bool) -> SplatData:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = inflater.decompress(data, LEGACY_HEADER.size)
        if len(head) < LEGACY_HEADER.size:
            raise InputError(source, "header", "truncated file: the gzip stream ends before "
                             "the 16-byte .spz header")
        magic, version, n, degree, fractional, flags, _ = LEGACY_HEADER.unpack(head)
        if magic != SPZ_MAGIC:
            raise InputError(source, None, "a gzip file that is not a .spz: the "
                             "decompressed data does not start with 'NGSP'")
        _check_header(version, n, degree, len(data), source)
        if version >= 4:
            raise InputError(source, "header", f"version {version} inside a gzip stream: "
                             "version 4 files are not gzip-compressed")
        sizes = _stream_sizes(n, degree, version)
        body_size = sum(size for _, size in sizes)
        limit = body_size + (_MAX_EXTENSION_BYTES if flags & FLAG_EXTENSIONS else 0)
        body = inflater.decompress(inflater.unconsumed_tail, limit + 1)
        complete = inflater.eof
    except zlib.error as exc:
        raise InputError(source, None, f"corrupt gzip data in a .spz: {exc}") from None
    if len(body) < body_size:
        raise InputError(source, "body", f"truncated file: {n} Gaussians need {body_size} "
                         f"bytes after the header, the gzip stream holds {len(body)}")
    if len(body) > limit:
        raise InputError(source, "body", "the gzip stream holds more data than the header "
                         "declares")
    if not complete:
        raise InputError(source, "body", "truncated file: the gzip stream does not end")
    arrays: dict[str, bytes] = {}
    offset = 0
    for name, size in sizes:
        arrays[name] = body[offset:offset + size]
        offset += size
    extensions = body[offset:]
    if extensions and not flags & FLAG_EXTENSIONS:
        raise InputError(source, "body", f"{len(extensions)} bytes follow the last array "
                         "and the header declares no extensions")
    return _decode(arrays, n, degree, version, fractional, flags, extensions, source,
                   dc_only, "gzip")


def _zstd_decompressor(source: str | Path) -> Callable[[bytes, int, str], bytes]:
    """A function ``(frame, size, field) -> bytes`` that decodes one Zstandard frame of
    exactly ``size`` bytes, producing at most ``size + 1`` (no decompression bombs)."""
    try:
        from compression import zstd  # Python 3.14+

        def run(blob: bytes, size: int) -> tuple[bytes, bool]:
            decoder = zstd.ZstdDecompressor()
            out = decoder.decompress(blob, max_length=size + 1)
            return out, decoder.eof

        errors: tuple[type[BaseException], ...] = (zstd.ZstdError,)
    except ImportError:
        try:
            import zstandard
        except ImportError:
            raise InputError(source, None, ".spz version 4 is Zstandard-compressed and this "
                             "Python has no Zstandard decoder: install the 'zstandard' "
                             "package (Blender ships it) or use Python 3.14+") from None

        def run(blob: bytes, size: int) -> tuple[bytes, bool]:
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob))
            out = reader.read(size + 1)
            return out, len(out) <= size and reader.read(1) == b""

        errors = (zstandard.ZstdError,)

    def decompress(blob: bytes, size: int, field: str) -> bytes:
        try:
            out, complete = run(blob, size)
        except errors as exc:
            raise InputError(source, field, f"corrupt Zstandard data: {exc}") from None
        if len(out) > size:
            raise InputError(source, field, f"the Zstandard data decodes to more than the "
                             f"{size} bytes declared")
        if len(out) < size or not complete:
            raise InputError(source, field, f"truncated Zstandard data: it decodes to "
                             f"{len(out)} of the {size} bytes declared")
        return out

    return decompress


def _axis_flips(extensions: bytes, source: str | Path) -> np.ndarray:
    """``[3]`` float64 signs taking the file's axes to the Inria PLY's (RDF)."""
    system = 0
    offset = 0
    while offset < len(extensions):
        if len(extensions) - offset < 8:
            raise InputError(source, "extensions", "truncated extension record")
        kind, length = struct.unpack_from("<II", extensions, offset)
        payload = extensions[offset + 8:offset + 8 + length]
        if len(payload) < length:
            raise InputError(source, "extensions", f"extension 0x{kind:08x} declares "
                             f"{length} bytes, {len(payload)} are left")
        if kind == COORDINATE_SYSTEM_EXTENSION:
            if length < 4:
                raise InputError(source, "extensions", "coordinate-system extension "
                                 "without its value")
            system = struct.unpack_from("<I", payload)[0]
            if system >= len(AXIS_SYSTEMS):
                raise InputError(source, "extensions", f"unknown coordinate system {system}")
        offset += 8 + length
    axes = AXIS_SYSTEMS[system]
    if system > 8:
        raise InputError(source, "extensions", f"data stored in the {axes} axes (a rotated "
                         "axis system) cannot be converted: only RUB-like systems are read")
    return np.array([1.0 if axes[0] == "R" else -1.0, 1.0 if axes[1] == "D" else -1.0,
                     1.0 if axes[2] == "F" else -1.0])


def _decode(arrays: dict[str, bytes], n: int, degree: int, version: int, fractional: int,
            flags: int, extensions: bytes, source: str | Path, dc_only: bool,
            encoding: str) -> SplatData:
    flips = _axis_flips(extensions, source)
    if version == 1:
        means = np.frombuffer(arrays["positions"], "<f2").reshape(n, 3).astype(np.float64)
    else:
        raw = np.frombuffer(arrays["positions"], np.uint8).reshape(n * 3, 3).astype(np.int32)
        fixed = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
        means = fixed.reshape(n, 3).astype(np.float64) / float(1 << fractional)
    alphas = np.frombuffer(arrays["alphas"], np.uint8).astype(np.float64) / 255.0
    colours = np.frombuffer(arrays["colours"], np.uint8).reshape(n, 3).astype(np.float64)
    log_scales = np.frombuffer(arrays["scales"], np.uint8).reshape(n, 3) / 16.0 - 10.0
    xyzw = (_smallest_three(arrays["rotations"], n) if version >= 3
            else _first_three(arrays["rotations"], n))
    quats = np.stack([xyzw[:, 3], xyzw[:, 0], xyzw[:, 1], xyzw[:, 2]], axis=1)
    quats[:, 1:] *= np.array([flips[1] * flips[2], flips[0] * flips[2], flips[0] * flips[1]])
    k = 1 if dc_only else (degree + 1) ** 2
    sh = np.empty((n, k, 3), dtype=np.float32)
    sh[:, 0, :] = (colours / 255.0 - 0.5) / COLOUR_SCALE
    if k > 1:
        rest = np.frombuffer(arrays["sh"], np.uint8).reshape(n, k - 1, 3)
        signs = np.array([np.prod([flips["xyz".index(a)] for a in axes])
                          for axes in SH_ODD_AXES[:k - 1]])
        sh[:, 1:, :] = (rest.astype(np.float64) - 128.0) / 128.0 * signs[None, :, None]
    means32 = (means * flips).astype(np.float32)
    scales = scales_from_log(log_scales)
    finite = np.isfinite(means32).all(axis=1)
    return SplatData(
        path=str(source), format="spz",
        means=means32, quats=quats.astype(np.float32), scales=scales,
        opacities=clamp_opacities(alphas), sh=sh, sh_degree=degree, finite=finite,
        encoding=encoding, antialiased=bool(flags & FLAG_ANTIALIASED), version=version,
    )


def _smallest_three(raw: bytes, n: int) -> np.ndarray:
    """``[N, 4]`` float64 xyzw quaternions from the 4-byte "smallest three" encoding."""
    comp = np.frombuffer(raw, "<u4", n).astype(np.int64)
    largest = comp >> 30
    out = np.zeros((n, 4), dtype=np.float64)
    rest = comp.copy()
    squares = np.zeros(n, dtype=np.float64)
    for i in (3, 2, 1, 0):  # fields are packed from w (lowest bits) up to x
        stored = largest != i
        value = (rest & 511) / 511.0 * math.sqrt(0.5)
        value = np.where((rest >> 9) & 1, -value, value)
        out[:, i] = np.where(stored, value, 0.0)
        squares += np.where(stored, value * value, 0.0)
        rest = np.where(stored, rest >> 10, rest)
    np.put_along_axis(out, largest[:, None], np.sqrt(np.maximum(0.0, 1.0 - squares))[:, None],
                      axis=1)
    return out


def _first_three(raw: bytes, n: int) -> np.ndarray:
    """``[N, 4]`` float64 xyzw quaternions from 3 bytes x y z (versions 1-2)."""
    xyz = np.frombuffer(raw, np.uint8).reshape(n, 3) / 127.5 - 1.0
    w = np.sqrt(np.maximum(0.0, 1.0 - np.sum(xyz * xyz, axis=1)))
    return np.concatenate([xyz, w[:, None]], axis=1)
