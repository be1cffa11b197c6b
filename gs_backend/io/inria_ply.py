"""Inria 3DGS PLY: the de-facto interchange format of trained splats.

Vertex properties: x y z [nx ny nz] f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3.
Scales are stored as logs, opacity as a logit, rot_0..3 is wxyz, and f_rest is
channel-major (all of R's higher-band coefficients, then G's, then B's).

The reader accepts any property order, extra properties (ignored, normals included),
any numeric property type (doubles are rounded to float32), and ASCII or binary bodies
of either byte order. It also hosts the generic PLY container code (header, element
tables) that :mod:`gs_backend.io.compressed_ply` shares.

Precision of the conversions (all done in float64, rounded once to float32):

* ``x y z``, ``f_*`` and ``rot_*`` are copied, so they round-trip bit for bit. A
  quaternion whose norm is within 2^-20 of 1 is kept as stored (it is unit to float32
  precision); others are normalised by the loader, which changes their raw values.
* ``scale_i = l`` is read as ``s = fl32(exp(l))`` and written back as ``fl32(log(s))``.
  The float32 ``s`` carries a relative error <= 2^-24, i.e. an absolute error <= 2^-24
  in ``l``, so ``|l' - l| <= 2^-24 + ulp(l)/2 <= 2^-24 (1 + |l|)``; for
  ``2 <= |l| <= 87`` that error is below half an ulp of ``l`` and ``l' == l`` exactly.
  Bit-exactness for every ``l`` is impossible: for ``|l| < 2`` several float32 logs map
  to the same float32 scale (e.g. all ``l`` within 6e-8 of 0 give ``s == 1``).
* ``opacity = o`` is read as ``p = fl32(sigmoid(o))`` and written as ``fl32(logit(p))``:
  ``|o' - o| <= 2^-24 (1 + e^o) + ulp(o)/2`` (first order; valid for ``o <= 12``), exact
  for ``-87 <= o <= -2``. Opacities are kept in [2^-126, 1 - 2^-24] (the smallest normal
  float32 and the largest float32 below 1) so that the logit stays finite: logits above
  ``logit(1 - 2^-24) = 16.64`` (fully opaque to float32 precision) saturate there.
* Gaussians -> file -> Gaussians: means, quaternions and SH are exact; scales come back
  with relative error <= 2^-24 (1 + |ln s|) and opacities with
  ``|p' - p| <= 2^-24 p (1 + (1 - p) |logit p|)`` (to first order in 2^-24).
"""

from __future__ import annotations

import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gs_backend.gaussians import Gaussians
from gs_contract.atomic import write_bytes_atomic
from gs_contract.errors import InputError

PlyEncoding = Literal["ascii", "binary_little_endian", "binary_big_endian"]

OPACITY_MIN = float(np.finfo(np.float32).tiny)  # 2^-126: logit = -87.3
OPACITY_MAX = 1.0 - 2.0**-24  # largest float32 below 1: logit = 16.64
SCALE_MIN = float(np.finfo(np.float32).tiny)  # the writer's floor, so log stays finite

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_ENCODINGS: tuple[PlyEncoding, ...] = ("ascii", "binary_little_endian", "binary_big_endian")
_MAX_HEADER_BYTES = 1 << 20
_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}  # f_rest property count -> SH degree
_GAUSSIAN_ONLY = ("f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                  "rot_0", "rot_1", "rot_2", "rot_3")


# --------------------------------------------------------------------------- PLY container


@dataclass(frozen=True)
class PlyProperty:
    """One property of a PLY element; ``type_code`` is numpy's, e.g. ``"f4"``."""

    name: str
    type_code: str
    is_list: bool = False


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    @property
    def property_names(self) -> list[str]:
        return [p.name for p in self.properties]

    @property
    def has_lists(self) -> bool:
        return any(p.is_list for p in self.properties)

    def property(self, name: str) -> PlyProperty | None:
        return next((p for p in self.properties if p.name == name), None)


@dataclass(frozen=True)
class PlyHeader:
    encoding: PlyEncoding
    elements: tuple[PlyElement, ...]
    body_offset: int  # bytes from the start of the file to the first body byte

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


def is_ply(data: bytes) -> bool:
    """True when ``data`` starts with the PLY magic line."""
    return data[:4] in (b"ply\n", b"ply\r")


def parse_ply_header(data: bytes, source: str | Path) -> PlyHeader:
    """Parse the header at the start of ``data`` (the whole file or a prefix of it).

    Raises:
        InputError: naming ``source`` and the header line at fault.
    """
    if not is_ply(data):
        raise InputError(source, None, "not a PLY file: it does not start with the line 'ply'")
    lines: list[str] = []
    pos = 0
    body_offset = None
    while pos < min(len(data), _MAX_HEADER_BYTES):
        end = data.find(b"\n", pos)
        if end < 0:
            break
        raw = data[pos:end].strip()
        pos = end + 1
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            raise InputError(source, f"header line {len(lines) + 1}",
                             "unreadable header: the line is not ASCII text") from None
        if line == "end_header":
            body_offset = pos
            break
        lines.append(line)
    if body_offset is None:
        raise InputError(source, "header", "unreadable header: no 'end_header' line "
                         f"in the first {min(len(data), _MAX_HEADER_BYTES)} bytes")
    return _parse_header_lines(lines, body_offset, source)


def _parse_header_lines(lines: list[str], body_offset: int, source: str | Path) -> PlyHeader:
    encoding: PlyEncoding | None = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for number, line in enumerate(lines[1:], start=2):
        where = f"header line {number}"
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        keyword = words[0]
        if keyword == "format":
            if len(words) < 2 or words[1] not in _ENCODINGS:
                raise InputError(source, where, f"unreadable header: unknown format {line!r} "
                                 f"(expected one of {', '.join(_ENCODINGS)})")
            encoding = words[1]  # type: ignore[assignment]
        elif keyword == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise InputError(source, where, f"unreadable header: bad element line {line!r} "
                                 "(expected 'element NAME COUNT')")
            elements.append((words[1], int(words[2]), []))
        elif keyword == "property":
            if not elements:
                raise InputError(source, where, "unreadable header: property before any element")
            elements[-1][2].append(_parse_property(words, line, where, source))
        else:
            raise InputError(source, where, f"unreadable header: unknown keyword {keyword!r}")
    if encoding is None:
        raise InputError(source, "header", "unreadable header: no 'format' line")
    for name, _, props in elements:
        names = [p.name for p in props]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(source, f"element {name}",
                             f"property {duplicates[0]} is declared twice")
    parsed = tuple(PlyElement(n, c, tuple(p)) for n, c, p in elements)
    return PlyHeader(encoding, parsed, body_offset)


def _parse_property(words: list[str], line: str, where: str, source: str | Path) -> PlyProperty:
    if len(words) == 5 and words[1] == "list":
        if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
            raise InputError(source, where, f"unreadable header: unknown type in {line!r}")
        return PlyProperty(words[4], _PLY_TYPES[words[3]], is_list=True)
    if len(words) != 3 or words[1] not in _PLY_TYPES:
        raise InputError(source, where, f"unreadable header: bad property line {line!r} "
                         "(expected 'property TYPE NAME' with a PLY scalar type)")
    return PlyProperty(words[2], _PLY_TYPES[words[1]])


class PlyTable:
    """The rows of one PLY element, readable column by column.

    ``values`` is either a 2D array ``[N, P]`` (all properties of one type, or an ASCII
    body parsed as float64) or a structured array ``[N]`` with one field per property.
    """

    def __init__(self, element: PlyElement, values: np.ndarray) -> None:
        self.element = element
        self.values = values
        self._index = {name: i for i, name in enumerate(element.property_names)}

    def __len__(self) -> int:
        return self.element.count

    def columns(self, names: Sequence[str], dtype: type = np.float32) -> np.ndarray:
        """``[N, len(names)]`` array of the named properties, cast to ``dtype``."""
        if self.values.dtype.names is None:
            taken = np.take(self.values, [self._index[n] for n in names], axis=1)
            return taken.astype(dtype, copy=False)
        out = np.empty((len(self), len(names)), dtype=dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            for j, name in enumerate(names):
                out[:, j] = self.values[name]
        return out


def read_ply_tables(data: bytes, header: PlyHeader, wanted: Collection[str],
                    source: str | Path) -> dict[str, PlyTable]:
    """Read the elements named in ``wanted`` from the body of ``data``.

    Raises:
        InputError: when the body is shorter than the header declares (naming the
            element, the rows declared and the rows present), when an ASCII row does not
            parse, or when a wanted element (or one before it) has list properties.
    """
    if header.encoding == "ascii":
        return _read_ascii_tables(data, header, wanted, source)
    byte_order = "<" if header.encoding == "binary_little_endian" else ">"
    tables: dict[str, PlyTable] = {}
    offset = header.body_offset
    for element in header.elements:
        if len(tables) == len(set(wanted)):
            break
        if element.has_lists:
            raise InputError(source, f"element {element.name}", "list properties are not "
                             "supported in a Gaussian splat file")
        types = {p.type_code for p in element.properties}
        if len(types) <= 1:  # one type (or no properties): read as a 2D array
            dtype = np.dtype(byte_order + (types.pop() if types else "f4"))
            row_bytes = dtype.itemsize * len(element.properties)
        else:
            dtype = np.dtype([(p.name, byte_order + p.type_code) for p in element.properties])
            row_bytes = dtype.itemsize
        needed = element.count * row_bytes
        available = max(len(data) - offset, 0)
        if needed > available:
            present = available // row_bytes if row_bytes else 0
            raise InputError(source, f"element {element.name}",
                             f"truncated file: the header declares {element.count} rows "
                             f"({needed} bytes) but the body holds only {present} complete "
                             f"rows ({available} bytes)")
        if element.name in wanted:
            if needed == 0:
                width = len(element.properties)
                values = np.empty((element.count,) if dtype.names else (element.count, width),
                                  dtype)
            elif dtype.names is not None:
                values = np.frombuffer(data, dtype, element.count, offset)
            else:
                values = np.frombuffer(data, dtype, element.count * len(element.properties),
                                       offset).reshape(element.count, -1)
            tables[element.name] = PlyTable(element, values)
        offset += needed
    return tables


def _read_ascii_tables(data: bytes, header: PlyHeader, wanted: Collection[str],
                       source: str | Path) -> dict[str, PlyTable]:
    try:
        text = data[header.body_offset:].decode("ascii")
    except UnicodeDecodeError as exc:
        raise InputError(source, "body", "an ASCII PLY body must be ASCII text, found byte "
                         f"0x{data[header.body_offset + exc.start]:02x}") from None
    rows = [line for line in text.splitlines() if line.strip()]
    tables: dict[str, PlyTable] = {}
    start = 0
    for element in header.elements:
        if len(tables) == len(set(wanted)):
            break
        element_rows = rows[start:start + element.count]
        if len(element_rows) < element.count:
            raise InputError(source, f"element {element.name}",
                             f"truncated file: the header declares {element.count} rows but "
                             f"the ASCII body holds only {len(element_rows)}")
        if element.name in wanted:
            if element.has_lists:
                raise InputError(source, f"element {element.name}", "list properties are not "
                                 "supported in a Gaussian splat file")
            values = _parse_ascii_rows(element_rows, element, source)
            tables[element.name] = PlyTable(element, values)
        start += element.count
    return tables


def _parse_ascii_rows(rows: list[str], element: PlyElement, source: str | Path) -> np.ndarray:
    width = len(element.properties)
    try:
        flat = np.fromstring(" ".join(rows), dtype=np.float64, sep=" ")
    except ValueError:
        flat = None
    if flat is not None and flat.size == len(rows) * width:
        return flat.reshape(len(rows), width)
    for i, row in enumerate(rows):  # slow path: only to name the first bad row
        words = row.split()
        if len(words) != width:
            raise InputError(source, f"element {element.name} row {i}",
                             f"expected {width} values, found {len(words)}")
        for word in words:
            try:
                float(word)
            except ValueError:
                raise InputError(source, f"element {element.name} row {i}",
                                 f"{word!r} is not a number") from None
    raise InputError(source, f"element {element.name}", "the ASCII body does not parse")


# ------------------------------------------------------------------- value conversions


def scales_from_log(log_scales: np.ndarray) -> np.ndarray:
    """Linear float32 scales from stored logs, exponentiated in float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(log_scales.astype(np.float64)).astype(np.float32)


def log_from_scales(scales: np.ndarray) -> np.ndarray:
    """Stored float32 logs of linear scales (floored at 2^-126 so the log is finite)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(np.maximum(scales.astype(np.float64), SCALE_MIN)).astype(np.float32)


def clamp_opacities(opacities: np.ndarray) -> np.ndarray:
    """Opacities clamped into [2^-126, 1 - 2^-24] (NaN stays NaN), float64."""
    return np.clip(opacities.astype(np.float64), OPACITY_MIN, OPACITY_MAX)


def opacities_from_logits(logits: np.ndarray) -> np.ndarray:
    """Float32 opacities in [2^-126, 1 - 2^-24] from stored logits (sigmoid in float64)."""
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    return clamp_opacities(p).astype(np.float32)


def logits_from_opacities(opacities: np.ndarray) -> np.ndarray:
    """Stored float32 logits of opacities (clamped as in :func:`clamp_opacities`)."""
    p = clamp_opacities(opacities)
    with np.errstate(invalid="ignore"):
        return (np.log(p) - np.log1p(-p)).astype(np.float32)


# ----------------------------------------------------------------------------- reader


def inria_property_names(sh_degree: int, with_normals: bool = False) -> list[str]:
    """Property names, in file order, of an Inria PLY of the given SH degree."""
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    names = ["x", "y", "z"]
    if with_normals:
        names += ["nx", "ny", "nz"]
    names += [f"f_dc_{i}" for i in range(3)]
    names += [f"f_rest_{i}" for i in range(rest)]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    return names


def _sh_property_names(sh_degree: int) -> list[str]:
    """Names of the SH properties in ``[K, 3]`` (coefficient-major) order."""
    k = (sh_degree + 1) ** 2
    names = []
    for coeff in range(k):
        for channel in range(3):
            if coeff == 0:
                names.append(f"f_dc_{channel}")
            else:
                names.append(f"f_rest_{channel * (k - 1) + coeff - 1}")
    return names


def inria_sh_degree(vertex: PlyElement, source: str | Path) -> int:
    """Validate that ``vertex`` describes Inria Gaussians and return its SH degree.

    Raises:
        InputError: for a plain point cloud, missing properties (all named), or an
            ``f_rest`` count that fits no SH degree 0-3.
    """
    names = set(vertex.property_names)
    if not names.intersection(_GAUSSIAN_ONLY):
        listed = ", ".join(vertex.property_names) or "none"
        raise InputError(source, None, f"this is a point cloud (vertex properties: {listed}), "
                         "not a Gaussian splat: it has none of the f_dc_*, opacity, scale_* "
                         "or rot_* properties")
    rest = sum(1 for n in names if n.startswith("f_rest_"))
    if rest not in _REST_COUNTS:
        raise InputError(source, "f_rest_*", f"{rest} f_rest properties fit no SH degree "
                         "(degrees 0, 1, 2, 3 need 0, 9, 24 or 45)")
    degree = _REST_COUNTS[rest]
    missing = [n for n in inria_property_names(degree) if n not in names]
    if missing:
        plural = "property" if len(missing) == 1 else "properties"
        raise InputError(source, "element vertex", f"missing {plural} {', '.join(missing)}")
    for name in inria_property_names(degree):
        prop = vertex.property(name)
        if prop is not None and prop.is_list:
            raise InputError(source, f"property {name}", "is a list, expected a number")
    return degree


def read_inria_ply(data: bytes, header: PlyHeader,
                   source: str | Path) -> tuple[Gaussians, np.ndarray]:
    """Decode every row of an Inria PLY's vertex element.

    Returns:
        gaussians: all rows, float32 CPU; quaternions as stored (not yet normalised).
        finite: ``[N]`` bool, True where every property used is finite in the file and
            every decoded value is finite.
    """
    vertex = header.element("vertex")
    if vertex is None:
        elements = ", ".join(e.name for e in header.elements) or "none"
        raise InputError(source, None, "not a Gaussian splat PLY: it has no element 'vertex' "
                         f"(elements: {elements})")
    degree = inria_sh_degree(vertex, source)
    head_names = ["x", "y", "z", "rot_0", "rot_1", "rot_2", "rot_3",
                  "scale_0", "scale_1", "scale_2", "opacity"]
    table = read_ply_tables(data, header, ["vertex"], source)["vertex"]
    n = len(table)
    with np.errstate(over="ignore"):  # doubles beyond float32 become inf: non-finite
        head = table.columns(head_names, np.float32)  # [N, 11]
        sh = table.columns(_sh_property_names(degree), np.float32)  # [N, 3K]
    scales = scales_from_log(head[:, 7:10])  # log scales above 88.7 overflow to inf
    finite = (np.isfinite(head).all(axis=1) & np.isfinite(sh).all(axis=1)
              & np.isfinite(scales).all(axis=1))
    g = Gaussians(
        means=torch.from_numpy(np.ascontiguousarray(head[:, 0:3])),
        quats=torch.from_numpy(np.ascontiguousarray(head[:, 3:7])),
        scales=torch.from_numpy(scales),
        opacities=torch.from_numpy(opacities_from_logits(head[:, 10])),
        sh=torch.from_numpy(sh.reshape(n, (degree + 1) ** 2, 3)),
    )
    return g, finite


# ----------------------------------------------------------------------------- writer


def gaussians_to_inria_columns(g: Gaussians) -> dict[str, np.ndarray]:
    """Raw Inria columns (log scales, logit opacity, channel-major f_rest), float32 each ``[N]``."""
    n = g.count
    means = g.means.detach().cpu().numpy().astype(np.float32)
    sh = g.sh.detach().cpu().numpy().astype(np.float32)  # [N, K, 3]
    cols: dict[str, np.ndarray] = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    for c in range(3):
        cols[f"f_dc_{c}"] = sh[:, 0, c]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    cols["opacity"] = logits_from_opacities(g.opacities.detach().cpu().numpy())
    log_scales = log_from_scales(g.scales.detach().cpu().numpy())
    for i in range(3):
        cols[f"scale_{i}"] = log_scales[:, i]
    quats = g.quats.detach().cpu().numpy().astype(np.float32)
    for i in range(4):
        cols[f"rot_{i}"] = quats[:, i]
    return cols


def inria_ply_bytes(g: Gaussians, *, with_normals: bool = False) -> bytes:
    """Serialise ``g`` as a binary little-endian Inria PLY (normals, if asked, are zeros).

    Opacities are clamped into [2^-126, 1 - 2^-24] and scales floored at 2^-126 so that
    every finite Gaussian gets finite logits and logs; see the module docstring for the
    round-trip precision.
    """
    names = inria_property_names(g.sh_degree, with_normals)
    cols = gaussians_to_inria_columns(g)
    table = np.zeros(g.count, dtype=[(name, "<f4") for name in names])
    for name in names:
        table[name] = cols.get(name, 0.0)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {g.count}"]
    header += [f"property float {name}" for name in names]
    header += ["end_header"]
    buf = io.BytesIO()
    buf.write(("\n".join(header) + "\n").encode("ascii"))
    buf.write(table.tobytes())
    return buf.getvalue()


def save_inria_ply(path: str | Path, g: Gaussians, *, with_normals: bool = False) -> None:
    """Write ``g`` to ``path`` as an Inria PLY (atomically)."""
    write_bytes_atomic(path, inria_ply_bytes(g, with_normals=with_normals))
