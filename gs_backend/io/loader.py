"""Load any supported Gaussian file: sniff the format, decode, drop invalid rows.

Formats are recognised by content: a file starting with the PLY magic line is a
SuperSplat compressed PLY when its vertex element has ``packed_*`` properties and an
Inria 3DGS PLY otherwise; a file without the magic is read as antimatter15 ``.splat``
only when its name ends in ``.splat`` (that format has no magic bytes).

A row is dropped, and counted in ``non_finite``, when a property it uses is NaN or
+-inf in the file, when its decoded values are not finite (e.g. a log scale above 88.7
overflows float32), or when its quaternion is zero. ``source_index`` keeps the row
number in the file of every Gaussian kept, so indices into the file (a scenario's
``keep`` list) map onto the loaded set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from gs_backend.gaussians import Gaussians
from gs_backend.io.compressed_ply import is_compressed_ply, read_compressed_ply
from gs_backend.io.inria_ply import is_ply, parse_ply_header, read_inria_ply
from gs_backend.io.splat_format import is_splat_path, read_splat
from gs_contract.errors import InputError

GaussianFileFormat = Literal["inria_ply", "compressed_ply", "splat"]

# A quaternion whose float64 norm is this close to 1 is unit to float32 precision and is
# kept bit for bit (so files round-trip exactly); any other is divided by its norm.
QUAT_UNIT_TOLERANCE = 2.0**-20


@dataclass(frozen=True)
class LoadedGaussians:
    """The valid Gaussians of one file and where each came from.

    Attributes:
        gaussians: finite rows only, float32, CPU, unit quaternions.
        source_index: ``[N]`` int64, the row in the file of each kept Gaussian.
        file_count: rows in the file.
        non_finite: rows dropped (NaN or +-inf values, or a zero quaternion).
        format: the detected file format.
        path: the file read.
    """

    gaussians: Gaussians
    source_index: np.ndarray
    file_count: int
    non_finite: int
    format: GaussianFileFormat
    path: Path


def read_file_bytes(path: Path) -> bytes:
    """The whole file, or :class:`InputError` for a missing, unreadable or empty one."""
    if path.is_dir():
        raise InputError(path, None, "is a directory, not a Gaussian splat file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, None, "file not found") from None
    except PermissionError:
        raise InputError(path, None, "permission denied: cannot read the file") from None
    except OSError as exc:
        raise InputError(path, None, f"cannot read the file: {exc.strerror or exc}") from None
    if not data:
        raise InputError(path, None, "the file is empty (0 bytes)")
    return data


def detect_format(data: bytes, path: Path) -> GaussianFileFormat:
    """Sniff the format of a file's content (and, for ``.splat``, its name)."""
    if is_ply(data):
        header = parse_ply_header(data, path)
        return "compressed_ply" if is_compressed_ply(header) else "inria_ply"
    if is_splat_path(path):
        return "splat"
    raise InputError(path, None, "not a Gaussian splat file: it does not start with the PLY "
                     "magic line 'ply' and is not named *.splat")


def load_gaussians(path: str | Path) -> LoadedGaussians:
    """Read an Inria PLY, SuperSplat compressed PLY or ``.splat`` file.

    Raises:
        InputError: one message naming the file and what is wrong with it.
    """
    path = Path(path)
    data = read_file_bytes(path)
    file_format = detect_format(data, path)
    if file_format == "splat":
        g, valid = read_splat(data, path)
    else:
        header = parse_ply_header(data, path)
        reader = read_compressed_ply if file_format == "compressed_ply" else read_inria_ply
        g, valid = reader(data, header, path)
    quats, usable = normalise_quaternions(g.quats)
    g = Gaussians(g.means, quats, g.scales, g.opacities, g.sh)
    keep = torch.from_numpy(valid) & usable
    kept = int(keep.sum())
    if kept < g.count:
        g = g.select(keep)
    return LoadedGaussians(
        gaussians=g,
        source_index=np.flatnonzero(keep.numpy()).astype(np.int64),
        file_count=len(valid),
        non_finite=len(valid) - kept,
        format=file_format,
        path=path,
    )


def normalise_quaternions(quats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit quaternions (norm taken in float64) and a mask of the usable ones.

    Args:
        quats: ``[N, 4]`` float32 CPU, any norm.

    Returns:
        unit: ``[N, 4]`` float32; rows within :data:`QUAT_UNIT_TOLERANCE` of unit norm are
            returned unchanged, zero or non-finite rows are left as they were.
        usable: ``[N]`` bool, False for rows whose norm is 0 or not finite.
    """
    q = quats.numpy()
    q64 = q.astype(np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", q64, q64))
    usable = np.isfinite(norm) & (norm > 0)
    rescale = usable & (np.abs(norm - 1.0) > QUAT_UNIT_TOLERANCE)
    if rescale.any():
        q = q.copy()
        q[rescale] = (q64[rescale] / norm[rescale, None]).astype(np.float32)
    return torch.from_numpy(q), torch.from_numpy(usable)
