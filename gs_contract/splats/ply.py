"""The generic PLY container: header, element tables, ASCII and binary bodies.

Only what Gaussian files need: elements of scalar properties (list properties are
refused where they would be read), bodies in ASCII or binary of either byte order. The
body must hold exactly what the header declares: fewer rows is a truncated file, and
more (binary: bytes after the last element; ASCII: rows after the last element) means
the header's counts are too low, which would silently drop data; both are refused.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from gs_contract.errors import InputError

PlyEncoding = Literal["ascii", "binary_little_endian", "binary_big_endian"]

PLY_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
ENCODINGS: tuple[PlyEncoding, ...] = ("ascii", "binary_little_endian", "binary_big_endian")
MAX_HEADER_BYTES = 1 << 20
BLOCK_BYTES = 8 << 20  # binary bodies read from a file handle, in blocks of about this size


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
    line_count: int  # lines up to and including end_header

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
    while pos < min(len(data), MAX_HEADER_BYTES):
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
                         f"in the first {min(len(data), MAX_HEADER_BYTES)} bytes")
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
            if len(words) < 2 or words[1] not in ENCODINGS:
                raise InputError(source, where, f"unreadable header: unknown format {line!r} "
                                 f"(expected one of {', '.join(ENCODINGS)})")
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
    return PlyHeader(encoding, parsed, body_offset, len(lines) + 1)


def _parse_property(words: list[str], line: str, where: str, source: str | Path) -> PlyProperty:
    if len(words) == 5 and words[1] == "list":
        if words[2] not in PLY_TYPES or words[3] not in PLY_TYPES:
            raise InputError(source, where, f"unreadable header: unknown type in {line!r}")
        return PlyProperty(words[4], PLY_TYPES[words[3]], is_list=True)
    if len(words) != 3 or words[1] not in PLY_TYPES:
        raise InputError(source, where, f"unreadable header: bad property line {line!r} "
                         "(expected 'property TYPE NAME' with a PLY scalar type)")
    return PlyProperty(words[2], PLY_TYPES[words[1]])


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
        """``[N, len(names)]`` C-contiguous array of the named properties, cast to ``dtype``
        (doubles beyond the float32 range become +-inf)."""
        with np.errstate(invalid="ignore", over="ignore"):
            if self.values.dtype.names is None:
                taken = np.take(self.values, [self._index[n] for n in names], axis=1)
                return np.ascontiguousarray(taken, dtype=dtype)
            out = np.empty((len(self), len(names)), dtype=dtype)
            for j, name in enumerate(names):
                out[:, j] = self.values[name]
        return out


def _list_error(element: PlyElement, source: str | Path) -> InputError:
    return InputError(source, f"element {element.name}", "list properties are not supported "
                      "in a Gaussian splat file")


def _row_dtype(element: PlyElement, byte_order: str) -> tuple[np.dtype, int]:
    """The dtype a binary element's rows read as (2D when one type) and its row size."""
    types = {p.type_code for p in element.properties}
    if len(types) <= 1:  # one type (or no properties): read as a 2D array
        dtype = np.dtype(byte_order + (types.pop() if types else "f4"))
        return dtype, dtype.itemsize * len(element.properties)
    dtype = np.dtype([(p.name, byte_order + p.type_code) for p in element.properties])
    return dtype, dtype.itemsize


def _truncated(element: PlyElement, row_bytes: int, available: int,
               source: str | Path) -> InputError:
    present = available // row_bytes if row_bytes else 0
    return InputError(source, f"element {element.name}",
                      f"truncated file: the header declares {element.count} rows "
                      f"({element.count * row_bytes} bytes) but the body holds only {present} "
                      f"complete rows ({available} bytes)")


def _trailing(header: PlyHeader, extra: int, source: str | Path) -> InputError:
    last = header.elements[-1] if header.elements else None
    hint = ""
    if last is not None:
        _, row_bytes = _row_dtype(last, "<")
        if row_bytes and extra >= row_bytes:
            hint = (f" (room for {extra // row_bytes} more {last.name} rows: the header's "
                    f"count {last.count} is lower than what the body holds)")
    return InputError(source, "body", f"{extra} bytes follow the last declared row{hint}; "
                      "refusing to guess which data is meant")


def read_ply_tables(data: bytes, header: PlyHeader, wanted: Collection[str],
                    source: str | Path) -> dict[str, PlyTable]:
    """Read the elements named in ``wanted`` from the body of ``data`` (the whole file).

    Raises:
        InputError: when the body is shorter than the header declares (naming the
            element, the rows declared and the rows present), when it holds more (binary:
            bytes after the last element; ASCII: rows after the last element), when an
            ASCII row does not parse or has the wrong number of values (naming the line),
            or when an element to read (or one before it) has list properties.
    """
    if header.encoding == "ascii":
        return _read_ascii_tables(data, header, wanted, source)
    byte_order = "<" if header.encoding == "binary_little_endian" else ">"
    tables: dict[str, PlyTable] = {}
    offset = header.body_offset
    for element in header.elements:
        if element.has_lists:
            if len(tables) == len(set(wanted)):
                return tables  # a later element we cannot size: the end is not checked
            raise _list_error(element, source)
        dtype, row_bytes = _row_dtype(element, byte_order)
        needed = element.count * row_bytes
        available = max(len(data) - offset, 0)
        if needed > available:
            raise _truncated(element, row_bytes, available, source)
        if element.name in wanted:
            width = len(element.properties)
            if needed == 0:
                values = np.empty((element.count,) if dtype.names else (element.count, width),
                                  dtype)
            elif dtype.names is not None:
                values = np.frombuffer(data, dtype, element.count, offset)
            else:
                values = np.frombuffer(data, dtype, element.count * width,
                                       offset).reshape(element.count, -1)
            tables[element.name] = PlyTable(element, values)
        offset += needed
    if len(data) > offset:
        raise _trailing(header, len(data) - offset, source)
    return tables


def _read_ascii_tables(data: bytes, header: PlyHeader, wanted: Collection[str],
                       source: str | Path) -> dict[str, PlyTable]:
    body = data[header.body_offset:]
    try:
        body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InputError(source, "body", "an ASCII PLY body must be ASCII text, found byte "
                         f"0x{body[exc.start]:02x}") from None
    numbered = [(number, line) for number, line in
                enumerate(body.splitlines(), start=header.line_count + 1) if line.strip()]
    tables: dict[str, PlyTable] = {}
    start = 0
    for element in header.elements:
        rows = numbered[start:start + element.count]
        if len(rows) < element.count:
            raise InputError(source, f"element {element.name}",
                             f"truncated file: the header declares {element.count} rows but "
                             f"the ASCII body holds only {len(rows)}")
        if element.name in wanted:
            if element.has_lists:
                raise _list_error(element, source)
            tables[element.name] = PlyTable(element, _parse_ascii_rows(rows, element, source))
        elif not element.has_lists:
            _check_token_counts(rows, element, source)
        start += element.count
    if start < len(numbered):
        number = numbered[start][0]
        last = header.elements[-1].name if header.elements else "none"
        raise InputError(source, f"line {number}", f"{len(numbered) - start} rows follow the "
                         f"last declared row (element {last}): the header's counts are lower "
                         "than what the body holds")
    return tables


def _check_token_counts(rows: list[tuple[int, bytes]], element: PlyElement,
                        source: str | Path) -> None:
    width = len(element.properties)
    for i, (number, row) in enumerate(rows):
        found = len(row.split())
        if found != width:
            raise InputError(source, f"element {element.name} row {i} (line {number})",
                             f"expected {width} values, found {found}")


def _parse_ascii_rows(rows: list[tuple[int, bytes]], element: PlyElement,
                      source: str | Path) -> np.ndarray:
    _check_token_counts(rows, element, source)
    width = len(element.properties)
    try:
        flat = np.array(b" ".join(row for _, row in rows).split(), dtype=np.float64)
    except ValueError:
        for i, (number, row) in enumerate(rows):  # slow path: only to name the bad row
            for word in row.split():
                try:
                    float(word)
                except ValueError:
                    raise InputError(source, f"element {element.name} row {i} (line {number})",
                                     f"{word.decode('ascii')!r} is not a number") from None
        raise InputError(source, f"element {element.name}",
                         "the ASCII body does not parse") from None
    return flat.reshape(len(rows), width)


def read_binary_columns(handle: BinaryIO, size: int, header: PlyHeader, element_name: str,
                        names: Sequence[str], source: str | Path, *,
                        also_finite: Sequence[str] = (),
                        block_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read some columns of one element of a binary PLY from an open file, in blocks.

    Only ``names`` are kept, so a big file's other columns never sit in memory at once.

    Args:
        handle: the file, opened in binary mode (its position is changed).
        size: the file's size in bytes.
        names: the columns returned, in this order.
        also_finite: further columns that are only checked for finiteness.
        block_bytes: bytes read at a time (default :data:`BLOCK_BYTES`).

    Returns:
        columns: ``[N, len(names)]`` float32 (doubles beyond its range become +-inf).
        finite: ``[N]`` bool, True where every value of ``names`` and ``also_finite`` is
            finite as a float32.

    Raises:
        InputError: as :func:`read_ply_tables` for a truncated or overlong body or list
            properties.
    """
    byte_order = "<" if header.encoding == "binary_little_endian" else ">"
    offset = header.body_offset
    target = None
    end = offset
    for element in header.elements:
        if element.has_lists:
            if target is None:
                raise _list_error(element, source)
            end = None  # a later element we cannot size: the end is not checked
            break
        dtype, row_bytes = _row_dtype(element, byte_order)
        available = max(size - end, 0)
        if element.count * row_bytes > available:
            raise _truncated(element, row_bytes, available, source)
        if element.name == element_name:
            target, target_dtype, target_offset = element, dtype, end
        end += element.count * row_bytes
    if end is not None and size > end:
        raise _trailing(header, size - end, source)
    assert target is not None, "the caller checked that the element exists"
    index = {name: i for i, name in enumerate(target.property_names)}
    picks = [index[n] for n in (*names, *also_finite)]
    row_bytes = target_dtype.itemsize * (1 if target_dtype.names else len(target.properties))
    n = target.count
    columns = np.empty((n, len(names)), dtype=np.float32)
    finite = np.ones(n, dtype=bool)
    block_rows = max(1, (block_bytes or BLOCK_BYTES) // max(row_bytes, 1))
    buffer = bytearray(min(block_rows, max(n, 1)) * row_bytes)
    handle.seek(target_offset)
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, n, block_rows):
            rows = min(block_rows, n - start)
            view = memoryview(buffer)[:rows * row_bytes]
            if _read_into(handle, view) < len(view):
                raise InputError(source, f"element {target.name}",
                                 "truncated file: the body ended early while reading")
            if target_dtype.names is None:
                block = np.frombuffer(view, target_dtype).reshape(rows, -1)
                columns[start:start + rows] = np.take(block, picks[:len(names)], axis=1)
                if block.dtype.kind == "f" and block.dtype.itemsize == 4 \
                        and np.isfinite(block).all():
                    continue  # the common case: every value of the block is finite
                picked = np.take(block, picks, axis=1).astype(np.float32)
            else:
                records = np.frombuffer(view, target_dtype)
                picked = np.empty((rows, len(picks)), dtype=np.float32)
                for j, i in enumerate(picks):
                    picked[:, j] = records[target.properties[i].name]
                columns[start:start + rows] = picked[:, :len(names)]
            finite[start:start + rows] = np.isfinite(picked).all(axis=1)
    return columns, finite


def _read_into(handle: BinaryIO, view: memoryview) -> int:
    """Fill ``view`` from ``handle``; the number of bytes read (short only at the end)."""
    filled = 0
    while filled < len(view):
        got = handle.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled
