"""The kept rows of a capture as an Inria PLY: exact copies, coordinates unchanged.

``x y z``, ``rot_*`` and every ``f_*`` are the float32 values the capture holds, bit for
bit (quaternions are not normalised). For an Inria PLY capture the stored ``scale_*``
and ``opacity`` are copied raw too (read again from the file: the decoded linear scales
and sigmoid opacities would not give back every stored value, see
:mod:`gs_contract.splats.inria`), so each output row equals its input row. Doubles in
the capture become float32, as the reader rounds them. Other formats (compressed PLY,
``.splat``, ``.spz``) store scales and opacities their own way; their decoded values
are written through the Inria writer (round-trip precision in :mod:`gs_contract.splats.inria`).
Normals, which renderers ignore, are not written.
"""

from __future__ import annotations

import os

import numpy as np

from gs_contract.errors import InputError
from gs_contract.splats import SplatData
from gs_contract.splats.inria import inria_columns, inria_columns_bytes, vertex_element
from gs_contract.splats.ply import (
    MAX_HEADER_BYTES,
    parse_ply_header,
    read_binary_columns,
    read_ply_tables,
)

_RAW = ("opacity", "scale_0", "scale_1", "scale_2")


def kept_rows_ply_bytes(splat: SplatData, rows: np.ndarray) -> bytes:
    """A binary little-endian Inria PLY of ``splat``'s ``rows`` (``[K]`` int indices, in
    this order), at the capture's SH degree.

    Raises:
        InputError: the capture changed on disk since it was read.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = inria_columns(splat.means[rows], splat.quats[rows], splat.scales[rows],
                         splat.opacities[rows], splat.sh[rows])
    if splat.format == "inria_ply":
        raw = _raw_columns(splat, _RAW)
        for j, name in enumerate(_RAW):
            cols[name] = raw[rows, j]
    return inria_columns_bytes(cols, rows.size, splat.sh_degree)


def _raw_columns(splat: SplatData, names: tuple[str, ...]) -> np.ndarray:
    """``[N, len(names)]`` float32: the stored values of an Inria PLY's vertex properties."""
    with open(splat.path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(MAX_HEADER_BYTES)
        header = parse_ply_header(head, splat.path)
        if header.encoding == "ascii":
            table = read_ply_tables(head + handle.read(), header, ["vertex"], splat.path)
            values = table["vertex"].columns(list(names), np.float32)
        else:
            values, _ = read_binary_columns(handle, size, header, "vertex", list(names),
                                            splat.path)
    if vertex_element(header, splat.path).count != splat.count:
        raise InputError(splat.path, None, "the file changed while it was being extracted")
    return values
