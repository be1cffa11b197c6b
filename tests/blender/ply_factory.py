"""Small Gaussian splat files for the Blender-side tests, written with numpy only.

``write_inria_ply`` writes an Inria 3DGS PLY in any encoding the format allows and
returns the values it wrote, so tests can compare what Blender imported against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SH_C0 = 0.28209479177387814
ENCODINGS = ("binary_little_endian", "binary_big_endian", "ascii")


@dataclass(frozen=True)
class InriaColumns:
    """What a test file holds, one row per Gaussian (float64 as generated).

    means ``[N, 3]``, f_dc ``[N, 3]``, f_rest ``[N, 3 * ((d + 1)^2 - 1)]`` (channel-major as
    in the file), opacity_logits ``[N]``, log_scales ``[N, 3]``, rots ``[N, 4]`` wxyz.
    """

    means: np.ndarray
    f_dc: np.ndarray
    f_rest: np.ndarray
    opacity_logits: np.ndarray
    log_scales: np.ndarray
    rots: np.ndarray
    sh_degree: int

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    def dc_colors(self) -> np.ndarray:
        return np.clip(0.5 + SH_C0 * self.f_dc, 0.0, 1.0)

    def opacities(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.opacity_logits))

    def max_scales(self) -> np.ndarray:
        return np.exp(self.log_scales).max(axis=1)


def inria_property_names(sh_degree: int, with_normals: bool = False) -> list[str]:
    """Property names in the usual file order."""
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if with_normals else [])
    names += [f"f_dc_{i}" for i in range(3)]
    names += [f"f_rest_{i}" for i in range(3 * ((sh_degree + 1) ** 2 - 1))]
    names += ["opacity"] + [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    return names


def random_columns(n: int, sh_degree: int = 0, seed: int = 0) -> InriaColumns:
    """Plausible random Gaussians: means in [-1, 1]^3, colours spanning [0, 1] and beyond."""
    rng = np.random.default_rng(seed)
    rest = 3 * ((sh_degree + 1) ** 2 - 1)
    rots = rng.normal(size=(n, 4))
    rots /= np.linalg.norm(rots, axis=1, keepdims=True)
    return InriaColumns(
        means=rng.uniform(-1.0, 1.0, (n, 3)),
        f_dc=rng.uniform(-2.5, 2.5, (n, 3)),  # some colours fall outside [0, 1]: clamped
        f_rest=rng.normal(0.0, 0.1, (n, rest)),
        opacity_logits=rng.uniform(-4.0, 4.0, n),
        log_scales=rng.uniform(-6.0, -2.0, (n, 3)),
        rots=rots,
        sh_degree=sh_degree,
    )


def column_table(cols: InriaColumns, with_normals: bool = False) -> dict[str, np.ndarray]:
    """Property name -> ``[N]`` values."""
    table: dict[str, np.ndarray] = {}
    for axis, name in enumerate("xyz"):
        table[name] = cols.means[:, axis]
    if with_normals:
        for name in ("nx", "ny", "nz"):
            table[name] = np.zeros(cols.count)
    for i in range(3):
        table[f"f_dc_{i}"] = cols.f_dc[:, i]
    for i in range(cols.f_rest.shape[1]):
        table[f"f_rest_{i}"] = cols.f_rest[:, i]
    table["opacity"] = cols.opacity_logits
    for i in range(3):
        table[f"scale_{i}"] = cols.log_scales[:, i]
    for i in range(4):
        table[f"rot_{i}"] = cols.rots[:, i]
    return table


def write_inria_ply(path: str | Path, cols: InriaColumns | None = None, *,
                    n: int = 100, sh_degree: int = 0, seed: int = 0,
                    encoding: str = "binary_little_endian", with_normals: bool = False,
                    dtype: str = "f4", order: list[str] | None = None,
                    extra_elements: str = "") -> InriaColumns:
    """Write an Inria PLY and return what it holds.

    Args:
        cols: the Gaussians (default: :func:`random_columns` of ``n``, ``sh_degree``, ``seed``).
        encoding: one of :data:`ENCODINGS`.
        dtype: numpy type code of every property ("f4" or "f8").
        order: property order (default: the usual one); a permutation of the names.
        extra_elements: header lines of extra zero-row elements appended after vertex.
    """
    cols = cols or random_columns(n, sh_degree, seed)
    table = column_table(cols, with_normals)
    names = order or inria_property_names(cols.sh_degree, with_normals)
    assert sorted(names) == sorted(table), "order must be a permutation of the properties"
    ply_type = {"f4": "float", "f8": "double"}[dtype]
    header = ["ply", f"format {encoding} 1.0", f"element vertex {cols.count}"]
    header += [f"property {ply_type} {name}" for name in names]
    if extra_elements:
        header.append(extra_elements)
    header.append("end_header")
    head = ("\n".join(header) + "\n").encode("ascii")
    if encoding == "ascii":
        rows = np.stack([table[name] for name in names], axis=1).astype(dtype)
        body = "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in rows)
        data = head + body.encode("ascii")
    else:
        endian = "<" if encoding == "binary_little_endian" else ">"
        record = np.zeros(cols.count, dtype=[(name, endian + dtype) for name in names])
        for name in names:
            record[name] = table[name]
        data = head + record.tobytes()
    Path(path).write_bytes(data)
    return cols
