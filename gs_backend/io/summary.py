"""What ``gs-backend info FILE [--json]`` reports about a Gaussian file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gs_backend.io.inria_ply import parse_ply_header
from gs_backend.io.loader import load_gaussians
from gs_contract.errors import InputError

FORMAT_NAMES = {
    "inria_ply": "Inria 3DGS PLY",
    "compressed_ply": "SuperSplat compressed PLY",
    "splat": "antimatter15 .splat",
}
_HEADER_PREFIX_BYTES = 1 << 20


def describe_gaussians(path: str | Path) -> dict[str, Any]:
    """A JSON-ready summary of a Gaussian file.

    Keys: ``file``, ``format`` (``inria_ply`` | ``compressed_ply`` | ``splat``),
    ``encoding`` (PLY body: ``ascii`` | ``binary_little_endian`` | ``binary_big_endian``;
    ``binary_little_endian`` for ``.splat``), ``count`` (finite Gaussians), ``file_count``,
    ``non_finite``, ``sh_degree``, ``has_normals`` (nx ny nz present), ``bounds``
    (``{"min": [x, y, z], "max": [x, y, z]}`` of the finite means, ``None`` when empty),
    ``median_opacity`` and ``median_scale`` (median over Gaussians of the largest linear
    scale; both ``None`` when empty).

    Raises:
        InputError: as :func:`gs_backend.io.load_gaussians`.
    """
    loaded = load_gaussians(path)
    g = loaded.gaussians
    encoding, has_normals = "binary_little_endian", False
    if loaded.format != "splat":
        try:
            with open(loaded.path, "rb") as f:
                prefix = f.read(_HEADER_PREFIX_BYTES)
        except OSError as exc:  # the file changed under us since it was loaded
            raise InputError(loaded.path, None, f"cannot read the file: {exc}") from None
        header = parse_ply_header(prefix, loaded.path)
        encoding = header.encoding
        vertex = header.element("vertex")
        names = vertex.property_names if vertex is not None else []
        has_normals = all(n in names for n in ("nx", "ny", "nz"))
    bounds = None
    median_opacity = median_scale = None
    if g.count:
        bounds = {"min": g.means.min(dim=0).values.tolist(),
                  "max": g.means.max(dim=0).values.tolist()}
        median_opacity = float(torch.median(g.opacities))
        median_scale = float(torch.median(g.scales.max(dim=1).values))
    return {
        "file": str(loaded.path),
        "format": loaded.format,
        "encoding": encoding,
        "count": g.count,
        "file_count": loaded.file_count,
        "non_finite": loaded.non_finite,
        "sh_degree": g.sh_degree,
        "has_normals": has_normals,
        "bounds": bounds,
        "median_opacity": median_opacity,
        "median_scale": median_scale,
    }


def format_summary(info: dict[str, Any]) -> str:
    """Short human-readable text (several lines, no trailing newline) for ``info``."""
    fmt = FORMAT_NAMES.get(info["format"], str(info["format"]))
    encoding = info.get("encoding")
    if encoding and info["format"] != "splat":
        fmt += f" ({encoding.replace('_', ' ')})"
    fmt += f", SH degree {info['sh_degree']}"
    if info.get("has_normals"):
        fmt += ", with normals"
    count = f"{info['count']:,}"
    if info["non_finite"]:
        count += (f" of {info['file_count']:,} rows ({info['non_finite']:,} dropped: "
                  "non-finite values or zero quaternion)")
    lines = [str(info["file"]), f"  format     {fmt}", f"  gaussians  {count}",
             f"  non-finite {info['non_finite']:,}"]
    bounds = info.get("bounds")
    if bounds:
        spans = "  ".join(f"{axis} [{lo:.4g}, {hi:.4g}]"
                          for axis, lo, hi in zip("xyz", bounds["min"], bounds["max"], strict=True))
        lines.append(f"  bounds     {spans}")
    if info.get("median_opacity") is not None:
        lines.append(f"  opacity    median {info['median_opacity']:.3g}")
    if info.get("median_scale") is not None:
        lines.append(f"  scale      median of the largest axis {info['median_scale']:.3g}")
    return "\n".join(lines)
