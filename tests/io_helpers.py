"""Test data for the Gaussian-file readers, written by independent writers (plyfile,
gsplat's exporter) so that the readers are never checked against themselves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plyfile
import torch

from gs_backend.gaussians import Gaussians

F32_EPS = 2.0**-24  # unit roundoff of float32


def inria_names(degree: int, with_normals: bool = False) -> list[str]:
    """The canonical Inria property order, spelled out here independently of the package."""
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if with_normals else [])
    names += ["f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * ((degree + 1) ** 2 - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2"]
    return [*names, "rot_0", "rot_1", "rot_2", "rot_3"]


def random_inria_columns(n: int, degree: int, seed: int, *,
                         with_normals: bool = False) -> dict[str, np.ndarray]:
    """Raw float32 Inria columns: log scales, logit opacities, float32-normalised quats."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for name in inria_names(degree, with_normals):
        cols[name] = rng.normal(0.0, 1.0, n).astype(np.float32)
    for i in range(3):
        cols[f"scale_{i}"] = rng.uniform(-9.0, 1.5, n).astype(np.float32)
    cols["opacity"] = rng.uniform(-7.0, 9.0, n).astype(np.float32)
    q = rng.normal(size=(n, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)  # float32: unit to a few ulps
    for i in range(4):
        cols[f"rot_{i}"] = q[:, i].copy()
    return cols


def write_plyfile(path: Path, columns: Mapping[str, np.ndarray], *,
                  order: Sequence[str] | None = None, text: bool = False,
                  byte_order: str = "<", dtypes: Mapping[str, str] | None = None) -> Path:
    """Write a one-element (vertex) PLY with plyfile; ``dtypes`` overrides ``f4`` per name."""
    order = list(order if order is not None else columns)
    dtypes = dtypes or {}
    n = len(next(iter(columns.values())))
    table = np.empty(n, dtype=[(name, dtypes.get(name, "f4")) for name in order])
    for name in order:
        table[name] = columns[name]
    element = plyfile.PlyElement.describe(table, "vertex")
    plyfile.PlyData([element], text=text, byte_order=byte_order).write(str(path))
    return path


def read_plyfile_columns(path: Path, element: str = "vertex") -> dict[str, np.ndarray]:
    data = plyfile.PlyData.read(str(path))[element].data
    return {name: data[name].astype(data[name].dtype.newbyteorder("=")) for name in
            data.dtype.names}


def expected_from_columns(cols: Mapping[str, np.ndarray], degree: int) -> Gaussians:
    """What a reader must return for raw Inria columns (float64 exp/sigmoid, one rounding)."""
    n = len(cols["x"])
    k = (degree + 1) ** 2
    sh = np.zeros((n, k, 3), dtype=np.float32)
    for c in range(3):
        sh[:, 0, c] = cols[f"f_dc_{c}"]
        for j in range(1, k):
            sh[:, j, c] = cols[f"f_rest_{c * (k - 1) + j - 1}"]  # channel-major in the file

    def stack(names: list[str]) -> np.ndarray:
        return np.stack([cols[m] for m in names], axis=1).astype(np.float32)

    log_scales = stack(["scale_0", "scale_1", "scale_2"]).astype(np.float64)
    logits = cols["opacity"].astype(np.float64)
    return Gaussians(
        means=torch.from_numpy(stack(["x", "y", "z"])),
        quats=torch.from_numpy(stack(["rot_0", "rot_1", "rot_2", "rot_3"])),
        scales=torch.from_numpy(np.exp(log_scales).astype(np.float32)),
        opacities=torch.from_numpy((1.0 / (1.0 + np.exp(-logits))).astype(np.float32)),
        sh=torch.from_numpy(sh),
    )


def random_export_params(n: int, degree: int, seed: int) -> dict[str, torch.Tensor]:
    """Keyword arguments for ``gsplat.exporter.export_splats`` (raw, trainer-style values)."""
    gen = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2
    quats = torch.randn(n, 4, generator=gen)
    return {
        "means": torch.randn(n, 3, generator=gen) * 2.0,
        "scales": torch.rand(n, 3, generator=gen) * 5.0 - 7.0,  # log scales in [-7, -2]
        "quats": quats / quats.norm(dim=1, keepdim=True),
        "opacities": torch.rand(n, generator=gen) * 12.0 - 5.0,  # logits in [-5, 7]
        "sh0": torch.randn(n, 1, 3, generator=gen) * 0.8,
        "shN": (torch.randn(n, k - 1, 3, generator=gen) * 1.2).clamp(-4.0, 4.0),
    }


def assert_same_gaussians(a: Gaussians, b: Gaussians) -> None:
    """Bitwise equality of every field."""
    for name in ("means", "quats", "scales", "opacities", "sh"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, (name, x.shape, y.shape)
        assert torch.equal(x, y), f"{name} differs"


def corrupted(data: bytes, rng: np.random.Generator, *, cuts: int, flips: int,
              span: int | None = None) -> list[bytes]:
    """``cuts`` random truncations of ``data`` and ``flips`` copies with 1-3 random bytes
    replaced within its first ``span`` bytes (all of it by default)."""
    span = len(data) if span is None else min(span, len(data))
    variants = [data[:int(k)] for k in rng.integers(1, len(data), cuts)]
    for _ in range(flips):
        mutant = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            mutant[int(rng.integers(0, span))] = int(rng.integers(0, 256))
        variants.append(bytes(mutant))
    return variants


def load_outcomes(path: Path, variants: Sequence[bytes], load) -> dict[str, int]:
    """Write each variant to ``path`` and ``load`` it: count loads and refusals, and check
    that every refusal is one InputError naming ``path`` (anything else propagates)."""
    from gs_contract.errors import InputError

    outcomes = {"loaded": 0, "refused": 0}
    for variant in variants:
        path.write_bytes(variant)
        try:
            load(path)
            outcomes["loaded"] += 1
        except InputError as exc:
            message = str(exc)
            assert message.startswith(str(path)) and "\n" not in message, message
            outcomes["refused"] += 1
    return outcomes
