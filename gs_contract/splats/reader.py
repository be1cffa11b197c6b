"""Read any supported Gaussian file: refuse what is not a regular file, sniff the
format, decode.

Formats are recognised by content: a file starting with the PLY magic line is a
SuperSplat compressed PLY when its vertex element has ``packed_*`` properties and an
Inria 3DGS PLY otherwise; one starting with ``NGSP`` (version 4) or the gzip magic
(versions 1-3) is a ``.spz``; a file with none of these is read as antimatter15
``.splat`` only when its name ends in ``.splat`` (that format has no magic bytes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from gs_contract.errors import InputError
from gs_contract.files import regular_file_problem
from gs_contract.splats.compressed import is_compressed_ply, read_compressed_ply
from gs_contract.splats.data import SplatData, SplatFormat
from gs_contract.splats.inria import read_inria_ply
from gs_contract.splats.ply import MAX_HEADER_BYTES, is_ply, parse_ply_header
from gs_contract.splats.splat_format import is_splat_path, read_splat
from gs_contract.splats.spz import is_spz, read_spz


def sniff_format(head: bytes, path: str | Path) -> SplatFormat:
    """The format of a file from its first bytes (a PLY header must be whole in ``head``)
    and, for ``.splat``, its name.

    Raises:
        InputError: for a file of none of the formats, or an unreadable PLY header.
    """
    if is_ply(head):
        return "compressed_ply" if is_compressed_ply(parse_ply_header(head, path)) \
            else "inria_ply"
    if is_spz(head):
        return "spz"
    if is_splat_path(path):
        return "splat"
    raise InputError(path, None, "not a Gaussian splat file: it does not start with the PLY "
                     "magic line 'ply' or a .spz signature, and is not named *.splat")


def read_splat_file(path: str | os.PathLike[str], *, dc_only: bool = False) -> SplatData:
    """Read an Inria PLY, SuperSplat compressed PLY, ``.splat`` or ``.spz`` file.

    A path that is not a regular file (a directory, ``/dev/zero``, a FIFO, a symbolic
    link loop) is refused before anything is read. A binary Inria PLY is read in blocks
    keeping only the columns asked for.

    Args:
        path: the file.
        dc_only: decode only the DC term of the SH (``sh`` is ``[N, 1, 3]``): what the
            Blender proxy shows, much faster on high-degree files. ``finite`` is the same.

    Raises:
        InputError: one line naming the file and what is wrong with it.
    """
    path = Path(path).absolute()
    problem = regular_file_problem(path)
    if problem is not None:
        raise InputError(path, None, problem)
    try:
        with open(path, "rb") as handle:
            return _read_open_file(handle, path, dc_only)
    except PermissionError:
        raise InputError(path, None, "permission denied: cannot read the file") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read the file: {exc.strerror or exc}") from None


def _read_open_file(handle: BinaryIO, path: Path, dc_only: bool) -> SplatData:
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        raise InputError(path, None, "the file is empty (0 bytes)")
    head = handle.read(MAX_HEADER_BYTES)
    if is_ply(head):  # the header is parsed once, here, and tells the two PLY kinds apart
        header = parse_ply_header(head, path)
        if is_compressed_ply(header):
            return read_compressed_ply(head + handle.read(), header, path, dc_only=dc_only)
        if header.encoding != "ascii":  # binary: read in blocks from the handle
            return read_inria_ply(None, handle, size, header, path, dc_only=dc_only)
        return read_inria_ply(head + handle.read(), None, size, header, path, dc_only=dc_only)
    file_format = sniff_format(head, path)
    data = head + handle.read()
    if file_format == "spz":
        return read_spz(data, path, dc_only=dc_only)
    return read_splat(data, path)
