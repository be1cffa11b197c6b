"""Inria 3DGS PLY: the de-facto interchange format of trained splats.

Vertex properties: x y z [nx ny nz] f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3.
Scales are stored as logs, opacity as a logit, rot_0..3 is wxyz, and f_rest is
channel-major (all of R's higher-band coefficients, then G's, then B's).

The reader accepts any property order, extra properties (ignored, normals included),
any numeric property type (doubles are rounded to float32), and ASCII or binary bodies
of either byte order.

Precision of the conversions (all done in float64, rounded once to float32):

* ``x y z``, ``f_*`` and ``rot_*`` are copied, so they round-trip bit for bit. A
  quaternion whose norm is within 2^-20 of 1 is kept as stored (it is unit to float32
  precision); others are normalised by :func:`~gs_contract.splats.normalise_quaternions`,
  which changes their raw values.
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

from pathlib import Path
from typing import BinaryIO

import numpy as np

from gs_contract.atomic import write_bytes_atomic
from gs_contract.errors import InputError
from gs_contract.splats.data import (
    SplatData,
    log_from_scales,
    logits_from_opacities,
    opacities_from_logits,
    scales_from_log,
    sh_degree_of_rest_count,
)
from gs_contract.splats.ply import PlyElement, PlyHeader, read_binary_columns, read_ply_tables

_GAUSSIAN_ONLY = ("f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                  "rot_0", "rot_1", "rot_2", "rot_3")
# The columns every read decodes: [N, 14], in this order.
_HEAD = ("x", "y", "z", "rot_0", "rot_1", "rot_2", "rot_3",
         "scale_0", "scale_1", "scale_2", "opacity", "f_dc_0", "f_dc_1", "f_dc_2")


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


def _rest_names(sh_degree: int) -> list[str]:
    """Names of the higher-band properties in ``[K-1, 3]`` (coefficient-major) order."""
    k = (sh_degree + 1) ** 2
    return [f"f_rest_{channel * (k - 1) + coeff - 1}"
            for coeff in range(1, k) for channel in range(3)]


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
    degree = sh_degree_of_rest_count(rest)
    if degree is None:
        raise InputError(source, "f_rest_*", f"{rest} f_rest properties fit no SH degree "
                         "(degrees 0, 1, 2, 3 need 0, 9, 24 or 45)")
    missing = [n for n in inria_property_names(degree) if n not in names]
    if missing:
        plural = "property" if len(missing) == 1 else "properties"
        raise InputError(source, "element vertex", f"missing {plural} {', '.join(missing)}")
    for name in inria_property_names(degree):
        prop = vertex.property(name)
        if prop is not None and prop.is_list:
            raise InputError(source, f"property {name}", "is a list, expected a number")
    return degree


def vertex_element(header: PlyHeader, source: str | Path) -> PlyElement:
    """The header's ``vertex`` element, or :class:`InputError` for a PLY without one."""
    vertex = header.element("vertex")
    if vertex is None:
        elements = ", ".join(e.name for e in header.elements) or "none"
        raise InputError(source, None, "not a Gaussian splat PLY: it has no element 'vertex' "
                         f"(elements: {elements})")
    return vertex


def read_inria_ply(data: bytes | None, handle: BinaryIO | None, size: int, header: PlyHeader,
                   source: str | Path, *, dc_only: bool = False) -> SplatData:
    """Decode every row of an Inria PLY's vertex element.

    Args:
        data: the whole file (needed for an ASCII body; None to read a binary body from
            ``handle`` in blocks).
        handle: the open file, used when ``data`` is None.
        size: the file's size in bytes.
        dc_only: decode the DC term only (``sh`` is ``[N, 1, 3]``); the higher bands are
            still checked for finiteness, so ``finite`` is the same either way.
    """
    vertex = vertex_element(header, source)
    degree = inria_sh_degree(vertex, source)
    rest = _rest_names(degree)
    names = list(_HEAD) if dc_only else [*_HEAD, *rest]
    checked = rest if dc_only else []
    if data is None:
        assert handle is not None
        cols, finite = read_binary_columns(handle, size, header, "vertex", names, source,
                                           also_finite=checked)
    else:
        table = read_ply_tables(data, header, ["vertex"], source)["vertex"]
        both = table.columns([*names, *checked], np.float32)
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(both).all(axis=1)
        cols = both[:, :len(names)]
    n = cols.shape[0]
    scales = scales_from_log(cols[:, 7:10])  # log scales above 88.7 overflow to inf
    finite &= np.isfinite(scales).all(axis=1)
    k = 1 if dc_only else (degree + 1) ** 2
    sh = np.empty((n, k, 3), dtype=np.float32)
    sh[:, 0, :] = cols[:, 11:14]
    sh[:, 1:, :] = cols[:, 14:].reshape(n, k - 1, 3)
    names_present = vertex.property_names
    return SplatData(
        path=str(source), format="inria_ply",
        means=np.ascontiguousarray(cols[:, 0:3]),
        quats=np.ascontiguousarray(cols[:, 3:7]),
        scales=scales,
        opacities=opacities_from_logits(cols[:, 10]),
        sh=sh, sh_degree=degree, finite=finite, encoding=header.encoding,
        has_normals=all(n in names_present for n in ("nx", "ny", "nz")),
    )


# ----------------------------------------------------------------------------- writer


def inria_columns(means: np.ndarray, quats: np.ndarray, scales: np.ndarray,
                  opacities: np.ndarray, sh: np.ndarray) -> dict[str, np.ndarray]:
    """Raw Inria columns (log scales, logit opacity, channel-major f_rest), float32 ``[N]``.

    Args:
        means: ``[N, 3]``; quats: ``[N, 4]`` wxyz; scales: ``[N, 3]`` linear;
        opacities: ``[N]`` in (0, 1); sh: ``[N, K, 3]``, DC first.
    """
    n = means.shape[0]
    means = means.astype(np.float32, copy=False)
    sh = sh.astype(np.float32, copy=False)
    cols: dict[str, np.ndarray] = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    for c in range(3):
        cols[f"f_dc_{c}"] = sh[:, 0, c]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    cols["opacity"] = logits_from_opacities(opacities)
    log_scales = log_from_scales(scales)
    for i in range(3):
        cols[f"scale_{i}"] = log_scales[:, i]
    quats = quats.astype(np.float32, copy=False)
    for i in range(4):
        cols[f"rot_{i}"] = quats[:, i]
    return cols


def inria_ply_bytes(means: np.ndarray, quats: np.ndarray, scales: np.ndarray,
                    opacities: np.ndarray, sh: np.ndarray, *,
                    with_normals: bool = False) -> bytes:
    """A binary little-endian Inria PLY of the given Gaussians (normals, if asked, zeros).

    Arguments as :func:`inria_columns`. Opacities are clamped into [2^-126, 1 - 2^-24]
    and scales floored at 2^-126 so that every finite Gaussian gets finite logits and
    logs; see the module docstring for the round-trip precision.
    """
    n, k = sh.shape[0], sh.shape[1]
    degree = round(k ** 0.5) - 1
    if (degree + 1) ** 2 != k or not 0 <= degree <= 3:
        raise ValueError(f"sh has {k} coefficients per channel: no SH degree 0-3 fits")
    return inria_columns_bytes(inria_columns(means, quats, scales, opacities, sh), n, degree,
                               with_normals=with_normals)


def inria_columns_bytes(cols: dict[str, np.ndarray], n: int, sh_degree: int, *,
                        with_normals: bool = False) -> bytes:
    """A binary little-endian Inria PLY of ``n`` rows from raw columns (as
    :func:`inria_columns` makes them, float32 ``[n]`` each; normals, if asked and absent,
    zeros)."""
    names = inria_property_names(sh_degree, with_normals)
    table = np.zeros(n, dtype=[(name, "<f4") for name in names])
    for name in names:
        table[name] = cols.get(name, 0.0)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    return ("\n".join(header) + "\n").encode("ascii") + table.tobytes()


def save_inria_ply(path: str | Path, means: np.ndarray, quats: np.ndarray, scales: np.ndarray,
                   opacities: np.ndarray, sh: np.ndarray, *, with_normals: bool = False) -> None:
    """Write the Gaussians to ``path`` as an Inria PLY, atomically (see
    :func:`inria_ply_bytes`)."""
    write_bytes_atomic(path, inria_ply_bytes(means, quats, scales, opacities, sh,
                                             with_normals=with_normals))
