"""Gaussian splat files, read and written with numpy only, one copy for both processes.

Read: Inria 3DGS PLY (SH degree 0-3, with or without normals, any property order and
type, ASCII or binary of either byte order), SuperSplat compressed PLY, antimatter15
``.splat`` and Niantic ``.spz`` (versions 1-4). Write: Inria PLY (atomically). Every
reader returns a :class:`SplatData` holding every row of the file; :func:`usable_rows`
says which rows to drop (the backend and the Blender proxy both use it).
"""

from gs_contract.splats.data import (
    OPACITY_MAX,
    OPACITY_MIN,
    QUAT_UNIT_TOLERANCE,
    SH_C0,
    SplatData,
    SplatFormat,
    normalise_quaternions,
    usable_rows,
)
from gs_contract.splats.inria import inria_ply_bytes, inria_property_names, save_inria_ply
from gs_contract.splats.reader import read_splat_file, sniff_format

FORMAT_NAMES: dict[str, str] = {
    "inria_ply": "Inria 3DGS PLY",
    "compressed_ply": "SuperSplat compressed PLY",
    "splat": "antimatter15 .splat",
    "spz": "Niantic .spz",
}

__all__ = [
    "FORMAT_NAMES",
    "OPACITY_MAX",
    "OPACITY_MIN",
    "QUAT_UNIT_TOLERANCE",
    "SH_C0",
    "SplatData",
    "SplatFormat",
    "inria_ply_bytes",
    "inria_property_names",
    "normalise_quaternions",
    "read_splat_file",
    "save_inria_ply",
    "sniff_format",
    "usable_rows",
]
