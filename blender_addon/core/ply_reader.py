"""Read Gaussian splat files with numpy only (no Blender, no torch).

Formats, sniffed by content like the backend does (``gs_backend.io.loader``):

* **Inria 3DGS PLY**: vertex properties ``x y z [nx ny nz] f_dc_0..2 f_rest_* opacity
  scale_0..2 rot_0..3`` in any order, any numeric type, ASCII or binary of either byte
  order, SH degree 0-3 (0, 9, 24 or 45 ``f_rest_*`` properties). Scales are stored as
  logs, opacity as a logit, ``rot_0..3`` is wxyz.
* **SuperSplat compressed PLY**: a ``chunk`` element with per-256-vertex bounds and four
  ``packed_*`` uint32 per vertex (see ``gs_backend/io/compressed_ply.py`` for the layout).
* **antimatter15 .splat**: headerless 32-byte rows (recognised by the ``.splat`` suffix).

All three are returned in the Inria encoding (log scales, opacity logits, DC
coefficients) so that the rest of the add-on has one representation. The higher SH
bands are not decoded: the Blender proxy shows the DC colour only, and the backend reads
the file itself at render time.

Every failure raises :class:`SplatReadError` with one message naming the file and what
is wrong (not a PLY, truncated, a missing property, a plain point cloud, ...).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

SplatFormat = Literal["inria_ply", "compressed_ply", "splat"]

SH_C0 = 0.28209479177387814  # the degree-0 SH basis constant: colour = 0.5 + SH_C0 * f_dc
OPACITY_MIN = float(np.finfo(np.float32).tiny)  # clamp before a logit, as the backend does
OPACITY_MAX = 1.0 - 2.0**-24
CHUNK_SIZE = 256  # vertices per chunk row of a compressed PLY
SPLAT_ROW = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)),
                      ("rgba", "u1", (4,)), ("rotation", "u1", (4,))])

_PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_ENCODINGS = ("ascii", "binary_little_endian", "binary_big_endian")
_MAX_HEADER_BYTES = 1 << 20
_BLOCK_BYTES = 8 << 20  # binary bodies are read in blocks of about this size
_REST_COUNTS = {0: 0, 9: 1, 24: 2, 45: 3}  # number of f_rest properties -> SH degree
# The columns the add-on decodes from an Inria PLY, in the order of SplatData's arrays.
_INRIA_COLUMNS = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_CHUNK_BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                 "min_scale_x", "min_scale_y", "min_scale_z",
                 "max_scale_x", "max_scale_y", "max_scale_z")
_CHUNK_COLOUR_BOUNDS = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_OTHER_COMPONENTS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


class SplatReadError(ValueError):
    """A Gaussian splat file that cannot be read; ``str()`` names the file and the fault."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        super().__init__(f"{os.fspath(path)}: {message}")
        self.path = os.fspath(path)
        self.detail = message


@dataclass(frozen=True)
class SplatData:
    """The Gaussians of one file, one row per file row, in the Inria encoding.

    Attributes:
        path: the file read (absolute).
        format: the detected format.
        means: ``[N, 3]`` float32 centres in the file's coordinates.
        f_dc: ``[N, 3]`` float32 SH DC coefficients (RGB).
        opacity_logits: ``[N]`` float32 logits (opacity = sigmoid(logit)).
        log_scales: ``[N, 3]`` float32 natural logs of the per-axis standard deviations.
        rots: ``[N, 4]`` float32 quaternions wxyz, as stored (not normalised).
        sh_degree: 0-3, the file's SH degree.

    Rows are returned as stored, non-finite values included: filtering is the caller's
    choice (the proxy builder skips them, as the backend does).
    """

    path: str
    format: SplatFormat
    means: np.ndarray
    f_dc: np.ndarray
    opacity_logits: np.ndarray
    log_scales: np.ndarray
    rots: np.ndarray
    sh_degree: int

    @property
    def count(self) -> int:
        """Rows in the file."""
        return int(self.means.shape[0])

    def dc_colors(self) -> np.ndarray:
        """``[N, 3]`` float32 display colours ``clip(0.5 + SH_C0 * f_dc, 0, 1)`` (sRGB-like)."""
        return np.clip(0.5 + SH_C0 * self.f_dc, 0.0, 1.0).astype(np.float32, copy=False)

    def opacities(self) -> np.ndarray:
        """``[N]`` float32 opacities in (0, 1): the sigmoid of the logits, taken in float64."""
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-self.opacity_logits.astype(np.float64)))
        return p.astype(np.float32)

    def linear_scales(self) -> np.ndarray:
        """``[N, 3]`` float32 standard deviations ``exp(log_scales)``."""
        with np.errstate(over="ignore"):
            return np.exp(self.log_scales.astype(np.float64)).astype(np.float32)


# ----------------------------------------------------------------------------- PLY header


@dataclass(frozen=True)
class PlyProperty:
    """One property of a PLY element; ``type_code`` is numpy's (``"f4"``, ``"u1"``, ...)."""

    name: str
    type_code: str
    is_list: bool = False


@dataclass(frozen=True)
class PlyElement:
    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.properties]

    @property
    def has_lists(self) -> bool:
        return any(p.is_list for p in self.properties)


@dataclass(frozen=True)
class PlyHeader:
    encoding: str  # one of _ENCODINGS
    elements: tuple[PlyElement, ...]
    body_offset: int  # bytes from the file start to the first body byte

    def element(self, name: str) -> PlyElement | None:
        return next((e for e in self.elements if e.name == name), None)


def is_ply(data: bytes) -> bool:
    """True when ``data`` starts with the PLY magic line."""
    return data[:4] in (b"ply\n", b"ply\r")


def parse_ply_header(data: bytes, path: str | os.PathLike[str]) -> PlyHeader:
    """Parse the header at the start of ``data`` (the file's bytes).

    Raises:
        SplatReadError: not a PLY, no ``end_header``, or a malformed header line.
    """
    if not is_ply(data):
        raise SplatReadError(path, "not a PLY file: it does not start with the line 'ply'")
    end = data.find(b"end_header", 0, _MAX_HEADER_BYTES)
    newline = data.find(b"\n", end) if end >= 0 else -1
    if end < 0 or newline < 0:
        raise SplatReadError(path, "unreadable PLY header: no 'end_header' line")
    try:
        lines = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise SplatReadError(path, "unreadable PLY header: it is not ASCII text") from None
    encoding = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2 and words[1] in _ENCODINGS:
            encoding = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            elements[-1][2].append(_parse_property(words, path, number, line))
        else:
            raise SplatReadError(path, f"unreadable PLY header line {number}: {line.strip()!r}")
    if encoding is None:
        raise SplatReadError(path, "unreadable PLY header: no valid 'format' line")
    for name, _, props in elements:
        names = [p.name for p in props]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise SplatReadError(path, f"element {name}: property {twice[0]} is declared twice")
    parsed = tuple(PlyElement(n, c, tuple(p)) for n, c, p in elements)
    return PlyHeader(encoding, parsed, newline + 1)


def _parse_property(words: list[str], path: str | os.PathLike[str], number: int,
                    line: str) -> PlyProperty:
    if len(words) == 5 and words[1] == "list" and words[2] in _PLY_TYPES \
            and words[3] in _PLY_TYPES:
        return PlyProperty(words[4], _PLY_TYPES[words[3]], is_list=True)
    if len(words) == 3 and words[1] in _PLY_TYPES:
        return PlyProperty(words[2], _PLY_TYPES[words[1]])
    raise SplatReadError(path, f"unreadable PLY header line {number}: bad property "
                         f"{line.strip()!r}")


# ------------------------------------------------------------------------------- PLY body


class _Table:
    """The rows of one element: a 2D ``[N, P]`` array (one type) or a structured ``[N]``."""

    def __init__(self, element: PlyElement, values: np.ndarray) -> None:
        self.element = element
        self.values = values
        self.index = {name: i for i, name in enumerate(element.names)}

    def columns(self, names: tuple[str, ...] | list[str], dtype: type) -> np.ndarray:
        """``[N, len(names)]`` C-contiguous array of the named properties cast to ``dtype``."""
        if self.values.dtype.names is None:
            picked = np.take(self.values, [self.index[n] for n in names], axis=1)
            return np.ascontiguousarray(picked, dtype=dtype)
        out = np.empty((self.element.count, len(names)), dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            for j, name in enumerate(names):
                out[:, j] = self.values[name]
        return out


def _read_tables(data: bytes, header: PlyHeader, wanted: set[str],
                 path: str | os.PathLike[str]) -> dict[str, _Table]:
    """The elements named in ``wanted``, read from the body of ``data``."""
    if header.encoding == "ascii":
        return _read_ascii_tables(data, header, wanted, path)
    order = "<" if header.encoding == "binary_little_endian" else ">"
    tables: dict[str, _Table] = {}
    offset = header.body_offset
    for element in header.elements:
        if wanted.issubset(tables):
            break
        if element.has_lists:
            raise SplatReadError(path, f"element {element.name} has list properties, which a "
                                 "Gaussian splat file does not use")
        types = {p.type_code for p in element.properties}
        if len(types) == 1:  # the common case: read a plain 2D array (fast column picks)
            dtype = np.dtype(order + types.pop())
            row_bytes = dtype.itemsize * len(element.properties)
        else:
            dtype = np.dtype([(p.name, order + p.type_code) for p in element.properties])
            row_bytes = dtype.itemsize
        needed = element.count * row_bytes
        available = max(len(data) - offset, 0)
        if needed > available:
            rows = available // row_bytes if row_bytes else 0
            raise SplatReadError(path, f"truncated file: element {element.name} declares "
                                 f"{element.count} rows but the file holds only {rows}")
        if element.name in wanted:
            if dtype.names is None:
                width = len(element.properties)
                values = np.frombuffer(data, dtype, element.count * width, offset)
                values = values.reshape(element.count, width)
            else:
                values = np.frombuffer(data, dtype, element.count, offset)
            tables[element.name] = _Table(element, values)
        offset += needed
    return tables


def _read_ascii_tables(data: bytes, header: PlyHeader, wanted: set[str],
                       path: str | os.PathLike[str]) -> dict[str, _Table]:
    lines = [line for line in data[header.body_offset:].splitlines() if line.strip()]
    tables: dict[str, _Table] = {}
    start = 0
    for element in header.elements:
        if wanted.issubset(tables):
            break
        rows = lines[start:start + element.count]
        if len(rows) < element.count:
            raise SplatReadError(path, f"truncated file: element {element.name} declares "
                                 f"{element.count} rows but the file holds only {len(rows)}")
        if element.name in wanted:
            width = len(element.properties)
            try:
                flat = np.array(b" ".join(rows).split(), dtype=np.float64)
            except ValueError:
                raise SplatReadError(path, f"element {element.name}: the ASCII body holds "
                                     "a value that is not a number") from None
            if element.has_lists or flat.size != element.count * width:
                raise SplatReadError(path, f"element {element.name}: expected {width} "
                                     "numbers on each ASCII row")
            tables[element.name] = _Table(element, flat.reshape(element.count, width))
        start += element.count
    return tables


# --------------------------------------------------------------------------- the formats


def read_splat_file(path: str | os.PathLike[str]) -> SplatData:
    """Read an Inria PLY, a SuperSplat compressed PLY or a ``.splat`` file.

    A binary Inria PLY is read in blocks, keeping only the columns the add-on uses, so
    the higher SH bands (most of the file) never sit in memory all at once.

    Raises:
        SplatReadError: naming the file and what is wrong with it.
    """
    path = Path(path).absolute()
    if path.is_dir():
        raise SplatReadError(path, "is a folder, not a Gaussian splat file")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise SplatReadError(path, "the file is empty (0 bytes)")
            head = handle.read(_MAX_HEADER_BYTES)
            if is_ply(head):
                header = parse_ply_header(head, path)
                vertex = header.element("vertex")
                if vertex is not None and "packed_position" in vertex.names:
                    return _read_compressed_ply(head + handle.read(), header, path)
                if header.encoding == "ascii":
                    return _read_inria_ply(head + handle.read(), header, path)
                return _read_binary_inria_ply(handle, size, header, path)
            if path.suffix.lower() == ".splat":
                return _read_splat(head + handle.read(), path)
    except FileNotFoundError:
        raise SplatReadError(path, "file not found") from None
    except OSError as exc:
        raise SplatReadError(path, f"cannot read the file: {exc.strerror or exc}") from None
    raise SplatReadError(path, "not a Gaussian splat file: it does not start with the PLY "
                         "magic line 'ply' and is not named *.splat")


def _inria_sh_degree(vertex: PlyElement, path: Path) -> int:
    names = set(vertex.names)
    if not names.intersection(_INRIA_COLUMNS[3:]):
        listed = ", ".join(vertex.names) or "none"
        raise SplatReadError(path, f"this is a point cloud (vertex properties: {listed}), not "
                             "a Gaussian splat: it has none of the f_dc_*, opacity, scale_* "
                             "or rot_* properties")
    rest = sum(1 for n in names if n.startswith("f_rest_"))
    if rest not in _REST_COUNTS:
        raise SplatReadError(path, f"{rest} f_rest_* properties fit no SH degree (degrees "
                             "0, 1, 2, 3 need 0, 9, 24 or 45)")
    degree = _REST_COUNTS[rest]
    expected = list(_INRIA_COLUMNS) + [f"f_rest_{i}" for i in range(rest)]
    missing = [n for n in expected if n not in names]
    if missing:
        word = "property" if len(missing) == 1 else "properties"
        raise SplatReadError(path, f"element vertex: missing {word} {', '.join(missing)}")
    return degree


def _vertex_element(header: PlyHeader, path: Path) -> PlyElement:
    vertex = header.element("vertex")
    if vertex is None:
        listed = ", ".join(e.name for e in header.elements) or "none"
        raise SplatReadError(path, f"not a Gaussian splat PLY: no element 'vertex' "
                             f"(elements: {listed})")
    return vertex


def _splat_from_columns(cols: np.ndarray, degree: int, path: Path) -> SplatData:
    """SplatData from the ``[N, 14]`` float32 columns named in ``_INRIA_COLUMNS``."""
    return SplatData(
        path=str(path), format="inria_ply",
        means=np.ascontiguousarray(cols[:, 0:3]),
        f_dc=np.ascontiguousarray(cols[:, 3:6]),
        opacity_logits=np.ascontiguousarray(cols[:, 6]),
        log_scales=np.ascontiguousarray(cols[:, 7:10]),
        rots=np.ascontiguousarray(cols[:, 10:14]),
        sh_degree=degree,
    )


def _read_inria_ply(data: bytes, header: PlyHeader, path: Path) -> SplatData:
    """An Inria PLY from the file's bytes (used for ASCII bodies)."""
    degree = _inria_sh_degree(_vertex_element(header, path), path)
    table = _read_tables(data, header, {"vertex"}, path)["vertex"]
    with np.errstate(over="ignore"):  # doubles beyond float32 become inf (caller filters)
        cols = table.columns(_INRIA_COLUMNS, np.float32)  # [N, 14]
    return _splat_from_columns(cols, degree, path)


def _read_binary_inria_ply(handle: BinaryIO, size: int, header: PlyHeader,
                           path: Path) -> SplatData:
    """A binary Inria PLY, read from ``handle`` in blocks of about 8 MB."""
    vertex = _vertex_element(header, path)
    degree = _inria_sh_degree(vertex, path)
    order = "<" if header.encoding == "binary_little_endian" else ">"
    offset = header.body_offset
    for element in header.elements:
        if element.has_lists:
            raise SplatReadError(path, f"element {element.name} has list properties, which a "
                                 "Gaussian splat file does not use")
        row = np.dtype([(p.name, order + p.type_code) for p in element.properties])
        if element is vertex:
            break
        offset += element.count * row.itemsize
    present = max(size - offset, 0) // row.itemsize if row.itemsize else vertex.count
    if present < vertex.count:
        raise SplatReadError(path, f"truncated file: element vertex declares {vertex.count} "
                             f"rows but the file holds only {present}")
    types = {p.type_code for p in vertex.properties}
    uniform = np.dtype(order + types.pop()) if len(types) == 1 else None
    picks = [vertex.names.index(name) for name in _INRIA_COLUMNS]
    cols = np.empty((vertex.count, len(_INRIA_COLUMNS)), dtype=np.float32)
    block_rows = max(1, _BLOCK_BYTES // row.itemsize)
    buffer = bytearray(block_rows * row.itemsize)
    handle.seek(offset)
    with np.errstate(over="ignore"):  # doubles beyond float32 become inf (caller filters)
        for start in range(0, vertex.count, block_rows):
            rows = min(block_rows, vertex.count - start)
            view = memoryview(buffer)[:rows * row.itemsize]
            if _read_into(handle, view) < len(view):
                raise SplatReadError(path, "truncated file: the body ended early")
            if uniform is not None:  # one type: a 2D view, columns picked in one pass
                block = np.frombuffer(view, uniform).reshape(rows, -1)
                cols[start:start + rows] = np.take(block, picks, axis=1)
            else:
                records = np.frombuffer(view, row)
                for j, name in enumerate(_INRIA_COLUMNS):
                    cols[start:start + rows, j] = records[name]
    return _splat_from_columns(cols, degree, path)


def _read_into(handle: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``handle``; the number of bytes read (short only at the end)."""
    filled = 0
    while filled < len(view):
        got = handle.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _logits(opacities: np.ndarray) -> np.ndarray:
    """float32 logits of float64 opacities, clamped as the backend clamps them."""
    p = np.clip(opacities, OPACITY_MIN, OPACITY_MAX)
    with np.errstate(invalid="ignore"):
        return (np.log(p) - np.log1p(-p)).astype(np.float32)


def _unorm(packed: np.ndarray, shift: int, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return ((packed >> np.uint32(shift)) & np.uint32(top)).astype(np.float64) / top


def _unpack_111011(packed: np.ndarray) -> np.ndarray:
    return np.stack([_unorm(packed, 21, 11), _unorm(packed, 11, 10), _unorm(packed, 0, 11)],
                    axis=1)


def _unpack_rotation(packed: np.ndarray) -> np.ndarray:
    largest = (packed >> np.uint32(30)).astype(np.intp)
    kept = np.stack([_unorm(packed, s, 10) for s in (20, 10, 0)], axis=1)
    kept = (kept - 0.5) * np.sqrt(2.0)
    dropped = np.sqrt(np.maximum(0.0, 1.0 - np.sum(kept * kept, axis=1)))
    quats = np.empty((packed.shape[0], 4), dtype=np.float64)
    np.put_along_axis(quats, largest[:, None], dropped[:, None], axis=1)
    np.put_along_axis(quats, _OTHER_COMPONENTS[largest], kept, axis=1)
    return quats


def _read_compressed_ply(data: bytes, header: PlyHeader, path: Path) -> SplatData:
    vertex = header.element("vertex")
    chunk = header.element("chunk")
    assert vertex is not None  # checked by the caller
    if chunk is None:
        raise SplatReadError(path, "compressed PLY without element 'chunk'")
    for element, required in ((vertex, _PACKED), (chunk, _CHUNK_BOUNDS)):
        missing = [p for p in required if p not in element.names]
        if missing:
            raise SplatReadError(path, f"element {element.name}: missing "
                                 f"{'property' if len(missing) == 1 else 'properties'} "
                                 f"{', '.join(missing)}")
    colour_bounds = all(n in chunk.names for n in _CHUNK_COLOUR_BOUNDS)
    n = vertex.count
    if chunk.count != -(-n // CHUNK_SIZE):
        raise SplatReadError(path, f"element chunk has {chunk.count} rows, but {n} vertices "
                             f"in chunks of {CHUNK_SIZE} need {-(-n // CHUNK_SIZE)}")
    sh = header.element("sh")
    rest = sum(1 for name in sh.names if name.startswith("f_rest_")) if sh else 0
    if rest not in _REST_COUNTS:
        raise SplatReadError(path, f"element sh: {rest} f_rest_* properties fit no SH degree")
    tables = _read_tables(data, header, {"chunk", "vertex"}, path)
    bound_names = _CHUNK_BOUNDS + (_CHUNK_COLOUR_BOUNDS if colour_bounds else ())
    bounds = tables["chunk"].columns(bound_names, np.float64)[np.arange(n) // CHUNK_SIZE]
    packed = tables["vertex"].columns(_PACKED, np.uint32)

    def lerp(lo: int, fractions: np.ndarray) -> np.ndarray:
        return bounds[:, lo:lo + 3] + (bounds[:, lo + 3:lo + 6] - bounds[:, lo:lo + 3]) \
            * fractions

    colour = np.stack([_unorm(packed[:, 3], s, 8) for s in (24, 16, 8, 0)], axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        rgb = lerp(12, colour[:, :3]) if colour_bounds else colour[:, :3]
        return SplatData(
            path=str(path), format="compressed_ply",
            means=lerp(0, _unpack_111011(packed[:, 0])).astype(np.float32),
            f_dc=((rgb - 0.5) / SH_C0).astype(np.float32),
            opacity_logits=_logits(colour[:, 3]),
            log_scales=lerp(6, _unpack_111011(packed[:, 2])).astype(np.float32),
            rots=_unpack_rotation(packed[:, 1]).astype(np.float32),
            sh_degree=_REST_COUNTS[rest],
        )


def _read_splat(data: bytes, path: Path) -> SplatData:
    size = len(data)
    if size % SPLAT_ROW.itemsize:
        raise SplatReadError(path, f"a .splat file holds {SPLAT_ROW.itemsize}-byte rows, but "
                             f"its size ({size} bytes) is not a multiple of "
                             f"{SPLAT_ROW.itemsize}")
    rows = np.frombuffer(data, dtype=SPLAT_ROW)
    rgba = rows["rgba"].astype(np.float64) / 255.0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scales = np.log(np.maximum(rows["scale"].astype(np.float64), OPACITY_MIN))
    return SplatData(
        path=str(path), format="splat",
        means=np.ascontiguousarray(rows["position"], dtype=np.float32),
        f_dc=((rgba[:, :3] - 0.5) / SH_C0).astype(np.float32),
        opacity_logits=_logits(rgba[:, 3]),
        log_scales=log_scales.astype(np.float32),
        rots=((rows["rotation"].astype(np.float64) - 128.0) / 128.0).astype(np.float32),
        sh_degree=0,
    )
