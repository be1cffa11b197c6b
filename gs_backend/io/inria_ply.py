"""Inria 3DGS PLY: the de-facto interchange format of trained splats.

Vertex properties: x y z [nx ny nz] f_dc_0..2 f_rest_0..M-1 opacity scale_0..2 rot_0..3.
Scales are stored as logs, opacity as a logit, rot_0..3 is wxyz, and f_rest is
channel-major (all of R's higher-band coefficients, then G's, then B's).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from gs_backend.gaussians import Gaussians
from gs_backend.io.atomic import write_bytes_atomic


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


def gaussians_to_inria_columns(g: Gaussians) -> dict[str, np.ndarray]:
    """Raw Inria columns (log scales, logit opacity, channel-major f_rest), float32 each ``[N]``."""
    n = g.count
    means = g.means.detach().cpu().numpy().astype(np.float32)
    sh = g.sh.detach().cpu().numpy().astype(np.float32)  # [N, K, 3]
    opac = g.opacities.detach().cpu().double().clamp(1e-12, 1 - 1e-12)
    cols: dict[str, np.ndarray] = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    for c in range(3):
        cols[f"f_dc_{c}"] = sh[:, 0, c]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    cols["opacity"] = torch.logit(opac).float().numpy()
    log_scales = torch.log(g.scales.detach().cpu().double()).float().numpy()
    for i in range(3):
        cols[f"scale_{i}"] = log_scales[:, i]
    quats = g.quats.detach().cpu().numpy().astype(np.float32)
    for i in range(4):
        cols[f"rot_{i}"] = quats[:, i]
    return cols


def inria_ply_bytes(g: Gaussians, *, with_normals: bool = False) -> bytes:
    """Serialise ``g`` as a binary little-endian Inria PLY."""
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
