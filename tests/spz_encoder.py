"""An independent ``.spz`` writer for the tests, numpy and the standard library only.

Written from the format's documentation (the README of github.com/nianticlabs/spz,
"File Format"; bit order of the rotation field from its reference packer), not from
``gs_contract.splats.spz``. It quantises values already in the file's own axes (RUB by
default): the axis conversion is the reader's job, and tests check it geometrically.
Version 4 needs the ``zstandard`` package (the backend depends on it; bpy requires it).
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpzContent:
    """Float values in the file's axes, before quantisation.

    positions ``[N, 3]``; alphas ``[N]`` opacities in [0, 1]; dc ``[N, 3]`` SH DC
    coefficients; log_scales ``[N, 3]``; rotations ``[N, 4]`` unit quaternions **xyzw**;
    sh ``[N, (d+1)^2 - 1, 3]`` higher bands (coefficient-major, channel last).
    """

    positions: np.ndarray
    alphas: np.ndarray
    dc: np.ndarray
    log_scales: np.ndarray
    rotations: np.ndarray
    sh: np.ndarray

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def sh_degree(self) -> int:
        return round((self.sh.shape[1] + 1) ** 0.5) - 1


def random_content(n: int, degree: int, seed: int) -> SpzContent:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return SpzContent(
        positions=rng.uniform(-50.0, 50.0, (n, 3)),
        alphas=rng.uniform(0.0, 1.0, n),
        dc=rng.uniform(-3.0, 3.0, (n, 3)),
        log_scales=rng.uniform(-9.0, 2.0, (n, 3)),
        rotations=q,
        sh=rng.uniform(-0.99, 0.99, (n, (degree + 1) ** 2 - 1, 3)),
    )


def _u8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def _positions(c: SpzContent, version: int, fractional_bits: int) -> bytes:
    if version == 1:
        return c.positions.astype("<f2").tobytes()
    fixed = np.round(c.positions * (1 << fractional_bits)).astype(np.int64).ravel()
    as_u24 = fixed & 0xFFFFFF  # two's complement in 24 bits
    return np.stack([as_u24 & 0xFF, (as_u24 >> 8) & 0xFF, as_u24 >> 16],
                    axis=1).astype(np.uint8).tobytes()


def _rotations(c: SpzContent, version: int) -> bytes:
    q = c.rotations
    if version < 3:  # x y z as 8-bit signed values, w >= 0 implied
        q = np.where(q[:, 3:4] < 0, -q, q)
        return _u8((q[:, :3] + 1.0) * 127.5).tobytes()
    out = np.empty(c.count, dtype="<u4")
    for row, quat in enumerate(q):  # "smallest three": 2-bit index, 3 x (sign + 9 bits)
        largest = int(np.argmax(np.abs(quat)))
        negate = quat[largest] < 0
        word = largest
        for i in range(4):
            if i != largest:
                sign = int((quat[i] < 0) != negate)
                magnitude = int(511 * abs(quat[i]) / np.sqrt(0.5) + 0.5)
                word = (word << 10) | (sign << 9) | magnitude
        out[row] = word
    return out.tobytes()


def _arrays(c: SpzContent, version: int, fractional_bits: int) -> list[bytes]:
    return [
        _positions(c, version, fractional_bits),
        _u8(c.alphas * 255.0).tobytes(),
        _u8(c.dc * (0.15 * 255.0) + 127.5).tobytes(),
        _u8((c.log_scales + 10.0) * 16.0).tobytes(),
        _rotations(c, version),
        _u8(c.sh * 128.0 + 128.0).tobytes(),
    ]


def spz_bytes(c: SpzContent, *, version: int = 4, antialiased: bool = False,
              fractional_bits: int = 12, coordinate_system: int | None = None) -> bytes:
    """A ``.spz`` file of ``c``; ``coordinate_system`` adds the SPZ_ADOBE_coordinate_system
    extension (0xADBE0003) with that value."""
    flags = 0x1 if antialiased else 0
    extensions = b""
    if coordinate_system is not None:
        flags |= 0x2
        extensions = struct.pack("<III", 0xADBE0003, 4, coordinate_system)
    arrays = _arrays(c, version, fractional_bits)
    if version < 4:
        header = struct.pack("<4sIIBBBB", b"NGSP", version, c.count, c.sh_degree,
                             fractional_bits, flags, 0)
        return gzip.compress(header + b"".join(arrays) + extensions)
    import zstandard

    streams = [zstandard.ZstdCompressor().compress(a) for a in arrays if a]
    toc_offset = 32 + len(extensions)
    header = struct.pack("<4sIIBBBBI12x", b"NGSP", version, c.count, c.sh_degree,
                         fractional_bits, flags, len(streams), toc_offset)
    toc = b"".join(struct.pack("<QQ", len(s), len(a))
                   for s, a in zip(streams, [a for a in arrays if a], strict=True))
    return header + extensions + toc + b"".join(streams)


def decoded(c: SpzContent, version: int = 4, fractional_bits: int = 12) -> SpzContent:
    """What the quantised file holds, per the documentation's decoding rules (file axes)."""
    def u8(raw: bytes, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(raw, np.uint8).reshape(shape).astype(np.float64)

    arrays = _arrays(c, version, fractional_bits)
    n, k = c.count, c.sh.shape[1]
    if version == 1:
        positions = np.frombuffer(arrays[0], "<f2").reshape(n, 3).astype(np.float64)
    else:
        fixed = np.round(c.positions * (1 << fractional_bits))
        positions = fixed / (1 << fractional_bits)
    return SpzContent(
        positions=positions,
        alphas=u8(arrays[1], (n,)) / 255.0,
        dc=(u8(arrays[2], (n, 3)) / 255.0 - 0.5) / 0.15,
        log_scales=u8(arrays[3], (n, 3)) / 16.0 - 10.0,
        rotations=c.rotations,  # quantised: compare with a tolerance
        sh=(u8(arrays[5], (n, k, 3)) - 128.0) / 128.0,
    )
