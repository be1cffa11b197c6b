"""What ``gs-backend info FILE [--json]`` reports about a Gaussian file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.splats import FORMAT_NAMES, read_splat_file, usable_rows


def describe_gaussians(path: str | Path) -> dict[str, Any]:
    """A JSON-ready summary of a Gaussian file.

    Keys: ``file``, ``format`` (``inria_ply`` | ``compressed_ply`` | ``splat`` | ``spz``),
    ``encoding`` (PLY body: ``ascii`` | ``binary_little_endian`` | ``binary_big_endian``;
    ``binary_little_endian`` for ``.splat``; ``gzip`` | ``zstd`` for ``.spz``),
    ``version`` (the ``.spz`` version, else None), ``antialiased`` (the ``.spz`` flag),
    ``count`` (usable Gaussians), ``file_count``, ``non_finite``, ``sh_degree``,
    ``has_normals`` (nx ny nz present), ``bounds`` (``{"min": [x, y, z], "max": [x, y,
    z]}`` of the usable means, ``None`` when empty), ``median_opacity`` and
    ``median_scale`` (median over Gaussians of the largest linear scale; both ``None``
    when empty).

    Raises:
        InputError: as :func:`gs_contract.splats.read_splat_file`.
    """
    splat = read_splat_file(path, dc_only=True)
    usable = usable_rows(splat)
    means = splat.means[usable]
    bounds = median_opacity = median_scale = None
    if means.shape[0]:
        bounds = {"min": means.min(axis=0).tolist(), "max": means.max(axis=0).tolist()}
        median_opacity = float(np.median(splat.opacities[usable]))
        median_scale = float(np.median(splat.scales[usable].max(axis=1)))
    return {
        "file": splat.path,
        "format": splat.format,
        "encoding": splat.encoding,
        "version": splat.version,
        "antialiased": splat.antialiased,
        "count": int(means.shape[0]),
        "file_count": splat.count,
        "non_finite": splat.count - int(means.shape[0]),
        "sh_degree": splat.sh_degree,
        "has_normals": splat.has_normals,
        "bounds": bounds,
        "median_opacity": median_opacity,
        "median_scale": median_scale,
    }


def format_summary(info: dict[str, Any]) -> str:
    """Short human-readable text (several lines, no trailing newline) for ``info``."""
    fmt = FORMAT_NAMES.get(info["format"], str(info["format"]))
    if info["format"] == "spz":
        fmt += f" version {info['version']} ({info['encoding']})"
    elif info["format"] != "splat":
        fmt += f" ({info['encoding'].replace('_', ' ')})"
    fmt += f", SH degree {info['sh_degree']}"
    if info.get("has_normals"):
        fmt += ", with normals"
    if info.get("antialiased"):
        fmt += ", antialiased"
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
