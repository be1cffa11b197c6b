"""Inria 3DGS PLY: reading files from independent writers, writing, round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gsplat.exporter import export_splats

from gs_backend.gaussians import Gaussians
from gs_backend.io import load_gaussians, save_inria_ply
from tests.io_helpers import (
    F32_EPS,
    assert_same_gaussians,
    expected_from_columns,
    inria_names,
    random_export_params,
    random_inria_columns,
    read_plyfile_columns,
    write_plyfile,
)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_gsplat_exported_ply_loads_exactly(tmp_path, degree):
    params = random_export_params(300, degree, seed=10 + degree)
    path = tmp_path / "gsplat.ply"
    export_splats(**params, format="ply", save_to=str(path))

    loaded = load_gaussians(path)
    g = loaded.gaussians
    assert (loaded.format, loaded.file_count, loaded.non_finite) == ("inria_ply", 300, 0)
    assert np.array_equal(loaded.source_index, np.arange(300))
    assert g.sh_degree == degree
    assert torch.equal(g.means, params["means"])
    assert torch.equal(g.quats, params["quats"])
    assert torch.equal(g.sh, torch.cat([params["sh0"], params["shN"]], dim=1))
    # Stored log scales / logits, converted in float64 and rounded once ...
    assert torch.equal(g.scales, torch.exp(params["scales"].double()).float())
    assert torch.equal(g.opacities, torch.sigmoid(params["opacities"].double()).float())
    # ... which agrees with float32 torch to within its own rounding.
    assert torch.allclose(g.scales, torch.exp(params["scales"]), rtol=4 * F32_EPS, atol=0)
    assert torch.allclose(g.opacities, torch.sigmoid(params["opacities"]), rtol=4 * F32_EPS,
                          atol=0)


def _shuffled(names: list[str], seed: int) -> list[str]:
    order = list(names)
    np.random.default_rng(seed).shuffle(order)
    return order


@pytest.mark.parametrize("with_normals", [False, True])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_every_encoding_and_property_order_loads_identically(tmp_path, degree, with_normals):
    seed = 100 + 10 * degree + with_normals
    cols = random_inria_columns(40, degree, seed, with_normals=with_normals)
    names = inria_names(degree, with_normals)
    reference = write_plyfile(tmp_path / "le.ply", cols, order=names)
    expected = load_gaussians(reference).gaussians
    assert_same_gaussians(expected, expected_from_columns(cols, degree))

    extras = dict(cols, red=np.arange(40) % 256, flags=np.arange(40) * -3)
    extra_types = {"red": "u1", "flags": "i4"}
    doubles = {name: "f8" for name in names[::3]}  # float32 values stored as doubles
    variants = {
        "be.ply": {"byte_order": ">"},
        "ascii.ply": {"text": True},
        "shuffled.ply": {"order": _shuffled(names, seed)},
        "shuffled_be_extras.ply": {"columns": extras, "byte_order": ">",
                                   "order": _shuffled([*names, "red", "flags"], seed + 1),
                                   "dtypes": extra_types},
        "ascii_extras_doubles.ply": {"columns": extras, "text": True,
                                     "order": _shuffled([*names, "red", "flags"], seed + 2),
                                     "dtypes": {**extra_types, **doubles}},
        "doubles_le.ply": {"dtypes": doubles},
    }
    for file_name, kwargs in variants.items():
        columns = kwargs.pop("columns", cols)
        kwargs.setdefault("order", names)
        path = write_plyfile(tmp_path / file_name, columns, **kwargs)
        loaded = load_gaussians(path)
        assert loaded.format == "inria_ply", file_name
        assert loaded.file_count == 40 and loaded.non_finite == 0, file_name
        assert_same_gaussians(loaded.gaussians, expected)


def test_doubles_are_rounded_to_float32(tmp_path):
    cols = random_inria_columns(30, 1, seed=7)
    rng = np.random.default_rng(8)
    wide = {name: c.astype(np.float64) + rng.normal(0, 1e-9, c.shape) for name, c in cols.items()}
    path = write_plyfile(tmp_path / "doubles.ply", wide, dtypes=dict.fromkeys(wide, "f8"))
    rounded = {name: c.astype(np.float32) for name, c in wide.items()}
    rounded_quats = np.stack([rounded[f"rot_{i}"] for i in range(4)], axis=1)
    unit = np.abs(np.linalg.norm(rounded_quats.astype(np.float64), axis=1) - 1) <= 2.0**-20
    assert unit.all()  # so the loader keeps them bit for bit
    assert_same_gaussians(load_gaussians(path).gaussians, expected_from_columns(rounded, 1))


def test_non_unit_quaternions_are_normalised(tmp_path):
    cols = random_inria_columns(50, 0, seed=3)
    factors = np.random.default_rng(4).uniform(0.01, 50.0, 50).astype(np.float32)
    for i in range(4):
        cols[f"rot_{i}"] = cols[f"rot_{i}"] * factors
    q = load_gaussians(write_plyfile(tmp_path / "q.ply", cols)).gaussians.quats.double()
    raw = torch.from_numpy(np.stack([cols[f"rot_{i}"] for i in range(4)], 1)).double()
    assert torch.allclose(q.norm(dim=1), torch.ones(50, dtype=torch.float64), atol=4 * F32_EPS)
    assert torch.allclose(q, raw / raw.norm(dim=1, keepdim=True), atol=2 * F32_EPS, rtol=0)


# Rows made invalid, by attribute; each must be dropped and counted.
_POISON = {
    3: ("x", np.nan), 5: ("f_dc_1", np.inf), 8: ("opacity", -np.inf),
    13: ("f_rest_7", np.nan), 21: ("scale_2", np.inf), 22: ("scale_0", 100.0),
    30: ("rot_3", np.nan), 31: ("z", -np.inf),
}


@pytest.mark.parametrize("encoding", ["le", "be", "ascii"])
def test_non_finite_rows_are_dropped_counted_and_indexed(tmp_path, encoding):
    cols = random_inria_columns(50, 1, seed=11, with_normals=True)
    clean = expected_from_columns(cols, 1)
    cols["junk"] = np.zeros(50, np.float32)
    for row, (name, value) in _POISON.items():
        cols[name][row] = value
    for i in range(4):
        cols[f"rot_{i}"][34] = 0.0  # zero quaternion: invalid
    cols["nx"][40] = np.nan  # ignored properties may be anything
    cols["junk"][41] = np.inf
    kwargs = {"le": {}, "be": {"byte_order": ">"}, "ascii": {"text": True}}[encoding]
    loaded = load_gaussians(write_plyfile(tmp_path / "poisoned.ply", cols, **kwargs))

    dropped = sorted([*_POISON, 34])
    kept = np.setdiff1d(np.arange(50), dropped)
    assert loaded.file_count == 50
    assert loaded.non_finite == len(dropped)
    assert loaded.source_index.dtype == np.int64
    assert np.array_equal(loaded.source_index, kept)
    assert_same_gaussians(loaded.gaussians, clean.select(torch.from_numpy(kept)))


def test_writer_round_trip_gaussians_file_gaussians(tmp_path):
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        n = 2000
        quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=1)
        scales = torch.exp(torch.empty(n, 3).uniform_(-14.0, 3.0, generator=gen))
        opacities = torch.empty(n).uniform_(1e-4, 1 - 1e-4, generator=gen)
        g = Gaussians(torch.randn(n, 3, generator=gen) * 5, quats, scales, opacities,
                      torch.randn(n, 16, 3, generator=gen))
        path = tmp_path / f"rt{seed}.ply"
        save_inria_ply(path, g, with_normals=bool(seed % 2))
        back = load_gaussians(path).gaussians

        assert torch.equal(back.means, g.means)
        assert torch.equal(back.quats, g.quats)
        assert torch.equal(back.sh, g.sh)
        s, s2 = g.scales.double(), back.scales.double()
        bound = F32_EPS * (1 + s.log().abs()) * s * (1 + 1e-6)
        assert ((s2 - s).abs() <= bound).all()
        p, p2 = g.opacities.double(), back.opacities.double()
        logit = torch.logit(p)
        bound = F32_EPS * p * (1 + (1 - p) * logit.abs()) * (1 + 1e-3)
        assert ((p2 - p).abs() <= bound).all()


def test_writer_keeps_extreme_values_finite(tmp_path):
    g = Gaussians(torch.zeros(4, 3), torch.tensor([[1.0, 0, 0, 0]] * 4),
                  torch.tensor([[0.0, 1e-45, 1.0]] * 4), torch.tensor([0.0, 1.0, 1e-40, 0.5]),
                  torch.zeros(4, 1, 3))
    path = tmp_path / "extreme.ply"
    save_inria_ply(path, g)
    cols = read_plyfile_columns(path)
    for name in ("opacity", "scale_0", "scale_1", "scale_2"):
        assert np.isfinite(cols[name]).all(), name
    loaded = load_gaussians(path)
    assert loaded.non_finite == 0
    p = loaded.gaussians.opacities
    assert ((p > 0) & (p < 1)).all()
    assert p[1] == np.float32(1 - 2**-24)


def _raw_round_trip(tmp_path, source):
    out = tmp_path / "rewritten.ply"
    save_inria_ply(out, load_gaussians(source).gaussians)
    return read_plyfile_columns(source), read_plyfile_columns(out)


def _assert_raw_round_trip(before: dict, after: dict) -> None:
    assert set(after) == {n for n in before if n not in ("nx", "ny", "nz")}
    for name in after:
        if name.startswith("scale_") or name == "opacity":
            continue
        assert np.array_equal(before[name].view(np.uint32), after[name].view(np.uint32)), name
    for i in range(3):  # log scales: |dl| <= 2^-24 (1 + |l|), exact for 2 <= |l| <= 87
        l, l2 = before[f"scale_{i}"].astype(np.float64), after[f"scale_{i}"].astype(np.float64)
        assert (np.abs(l2 - l) <= F32_EPS * (1 + np.abs(l)) * (1 + 1e-6)).all()
        wide = (np.abs(l) >= 2) & (np.abs(l) <= 87)
        assert wide.sum() > len(l) // 3
        assert np.array_equal(l2[wide], l[wide])
    o, o2 = before["opacity"].astype(np.float64), after["opacity"].astype(np.float64)
    usual = o <= 12  # |do| <= 2^-24 ((1 + e^o) + |o|), exact for -87 <= o <= -2
    bound = F32_EPS * ((1 + np.exp(o)) * 1.01 + np.abs(o))
    assert (np.abs(o2 - o)[usual] <= bound[usual]).all()
    low = (o >= -87) & (o <= -2)
    assert low.sum() > 0
    assert np.array_equal(o2[low], o[low])
    saturated = o > 17.4
    assert np.all(o2[saturated] == np.float32(math.log((1 - 2**-24) / 2**-24)))


def test_raw_round_trip_of_gsplat_exported_file(tmp_path):
    params = random_export_params(3000, 3, seed=21)
    gen = torch.Generator().manual_seed(22)
    params["scales"] = torch.empty(3000, 3).uniform_(-12.0, 4.0, generator=gen)
    params["opacities"] = torch.empty(3000).uniform_(-80.0, 12.0, generator=gen)
    params["opacities"][:10] = torch.tensor([20.0, 30.0, 18.0, -3.0, 0.0, 1.0, 5.0, 9.0, -1, -2])
    source = tmp_path / "gsplat.ply"
    export_splats(**params, format="ply", save_to=str(source))
    _assert_raw_round_trip(*_raw_round_trip(tmp_path, source))


@pytest.mark.parametrize("degree", [0, 2])
def test_raw_round_trip_of_plyfile_written_file(tmp_path, degree):
    cols = random_inria_columns(3000, degree, seed=30 + degree, with_normals=True)
    rng = np.random.default_rng(31)
    for i in range(3):
        cols[f"scale_{i}"] = rng.uniform(-12.0, 4.0, 3000).astype(np.float32)
    cols["opacity"] = rng.uniform(-80.0, 12.0, 3000).astype(np.float32)
    source = write_plyfile(tmp_path / "plyfile.ply", cols, byte_order=">",
                           order=_shuffled(list(cols), 5))
    _assert_raw_round_trip(*_raw_round_trip(tmp_path, source))
