"""SuperSplat compressed PLY and antimatter15 .splat (written by gsplat's exporter and by
hand from the format description), format sniffing, and the ``info`` summary."""

from __future__ import annotations

import json
import math

import numpy as np
import plyfile
import pytest
import torch
from gsplat.exporter import export_splats, sort_centers

from gs_backend.gaussians import SH_C0
from gs_backend.io import describe_gaussians, format_summary, load_gaussians
from gs_contract.splats import read_splat_file
from tests.io_helpers import random_export_params, random_inria_columns, write_plyfile

SLACK = 2.0**-20  # float32 rounding in the writer's and the reader's arithmetic


def _per_chunk(values: torch.Tensor, chunk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max of ``values`` ``[M, D]`` over each row's chunk, broadcast back to rows."""
    lo = torch.stack([values[chunk == c].min(0).values for c in range(int(chunk.max()) + 1)])
    hi = torch.stack([values[chunk == c].max(0).values for c in range(int(chunk.max()) + 1)])
    return lo[chunk].double(), hi[chunk].double()


def _quantisation_bound(lo, hi, steps):
    """Half a quantisation step of a value normalised in [lo, hi], plus float32 slack."""
    return (hi - lo) * (0.5 / steps + SLACK) + SLACK * torch.maximum(lo.abs(), hi.abs())


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_gsplat_compressed_ply_within_quantisation_error(tmp_path, degree):
    params = random_export_params(1000, degree, seed=40 + degree)
    params["opacities"][:25] = -8.0  # below gsplat's 1/255 cut: not written
    path = tmp_path / "compressed.ply"
    export_splats(**params, format="ply_compressed", save_to=str(path))
    loaded = load_gaussians(path)
    g = loaded.gaussians

    written = torch.sigmoid(params["opacities"]) > 1 / 255
    m = int(written.sum())
    assert m == 975
    order = sort_centers(params["means"][written], torch.arange(m))  # the file's row order
    want = {k: v[written][order] for k, v in params.items()}
    chunk = torch.arange(m) // 256
    assert (loaded.format, loaded.file_count, loaded.non_finite) == ("compressed_ply", m, 0)
    assert np.array_equal(loaded.source_index, np.arange(m))
    assert g.sh_degree == degree

    # Positions: 11/10/11 bits over the chunk's box.
    lo, hi = _per_chunk(want["means"], chunk)
    steps = torch.tensor([2047.0, 1023.0, 2047.0], dtype=torch.float64)
    err = (g.means.double() - want["means"].double()).abs()
    assert (err <= _quantisation_bound(lo, hi, steps)).all()
    # Log scales: 11/10/11 bits over the chunk's (clamped) range.
    lo, hi = _per_chunk(want["scales"], chunk)
    err = (g.scales.double().log() - want["scales"].double()).abs()
    assert (err <= _quantisation_bound(lo.clamp(-20, 20), hi.clamp(-20, 20), steps)).all()
    # DC colour: 8 bits over the chunk's colour range; opacity: 8 bits over [0, 1].
    rgb = want["sh0"][:, 0] * SH_C0 + 0.5
    lo, hi = _per_chunk(rgb, chunk)
    err = (0.5 + SH_C0 * g.sh[:, 0].double() - rgb.double()).abs()
    assert (err <= _quantisation_bound(lo, hi, 255.0)).all()
    err = (g.opacities.double() - torch.sigmoid(want["opacities"]).double()).abs()
    assert (err <= 0.5 / 255 + SLACK).all()
    # Quaternion: 3 components of 10 bits, each off by <= delta = sqrt2 / 2046; the
    # dropped one (>= 1/2) is recovered from the unit norm, so |dq| <= 2 sqrt3 delta.
    delta = math.sqrt(2) * 0.5 / 1023
    q, q_true = g.quats.double(), want["quats"].double()
    dist = torch.minimum((q - q_true).norm(dim=1), (q + q_true).norm(dim=1))
    assert (dist <= 2 * math.sqrt(3) * delta * 1.05).all()
    # Higher SH bands: trunc(32 f + 128) bytes decoded at bucket centres: |df| <= 1/64.
    if degree:
        err = (g.sh[:, 1:].double() - want["shN"].double()).abs()
        assert (err <= 1 / 64 + SLACK).all()
        assert err.max() > 0.9 / 64  # and the bound is tight


def test_compressed_chunk_with_non_finite_bounds_drops_its_rows(tmp_path):
    path = tmp_path / "compressed.ply"
    export_splats(**random_export_params(700, 1, seed=45), format="ply_compressed",
                  save_to=str(path))
    clean = load_gaussians(path)
    data = bytearray(path.read_bytes())
    body = data.index(b"end_header\n") + len(b"end_header\n")
    chunk_row = 18 * 4  # 18 float bounds per chunk
    data[body + chunk_row + 4 * 7:body + chunk_row + 4 * 8] = np.float32(np.nan).tobytes()
    path.write_bytes(bytes(data))  # chunk 1's min_scale_y is NaN
    loaded = load_gaussians(path)
    kept = np.r_[0:256, 512:clean.file_count]
    assert loaded.file_count == clean.file_count and loaded.non_finite == 256
    assert np.array_equal(loaded.source_index, kept)
    assert torch.equal(loaded.gaussians.means, clean.gaussians.means[kept])
    assert torch.equal(loaded.gaussians.sh, clean.gaussians.sh[kept])


def _pack_rotation_by_hand(q: np.ndarray) -> int:
    """2-bit index of the largest |component| + 3 x 10 bits of the others (spec encoding)."""
    largest = int(np.argmax(np.abs(q)))
    q = q if q[largest] > 0 else -q
    others = [q[i] for i in range(4) if i != largest]
    fields = [round((c * math.sqrt(0.5) + 0.5) * 1023) for c in others]
    return (largest << 30) | (fields[0] << 20) | (fields[1] << 10) | fields[2]


def test_hand_made_compressed_ply_without_colour_bounds(tmp_path):
    """Older files: 12 floats per chunk, colours stored directly; each rotation index."""
    quats = np.array([[0.9, 0.1, -0.3, 0.2], [0.1, -0.8, 0.3, 0.4],
                      [0.2, 0.3, 0.85, -0.1], [-0.1, 0.2, 0.3, -0.9]])
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    chunk = np.zeros(1, dtype=[(n, "f4") for n in (
        "min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y",
        "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")])
    for name, value in zip(chunk.dtype.names, [-1, 0, 2, 3, 1, 4, -8, -6, -4, -2, -3, 0],
                           strict=True):
        chunk[name] = value
    vertex = np.zeros(4, dtype=[(n, "u4") for n in (
        "packed_position", "packed_rotation", "packed_scale", "packed_color")])
    vertex["packed_position"] = (2047 << 21) | (0 << 11) | 1024
    vertex["packed_scale"] = (0 << 21) | (1023 << 11) | 2047
    vertex["packed_color"] = (255 << 24) | (0 << 16) | (128 << 8) | 51
    vertex["packed_rotation"] = [_pack_rotation_by_hand(q) for q in quats]
    path = tmp_path / "old.compressed.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(chunk, "chunk"),
                     plyfile.PlyElement.describe(vertex, "vertex")]).write(str(path))
    g = load_gaussians(path).gaussians

    expected_mean = [3.0, 0.0, 2 + 2 * 1024 / 2047]
    assert torch.allclose(g.means.double(), torch.tensor([expected_mean] * 4,
                                                         dtype=torch.float64), atol=1e-6)
    assert torch.allclose(g.scales.double(), torch.tensor([[math.exp(-8), math.exp(-3),
                                                            math.exp(0)]] * 4).double(),
                          rtol=1e-6)
    dc = (np.array([255, 0, 128]) / 255 - 0.5) / SH_C0
    assert torch.allclose(g.sh[:, 0].double(), torch.from_numpy(np.tile(dc, (4, 1))), atol=1e-6)
    assert torch.allclose(g.opacities, torch.full((4,), 0.2), atol=1e-7)
    delta = math.sqrt(2) * 0.5 / 1023
    q = g.quats.double()
    q_true = torch.from_numpy(quats)
    dist = torch.minimum((q - q_true).norm(dim=1), (q + q_true).norm(dim=1))
    assert (dist <= 2 * math.sqrt(3) * delta * 1.05).all()
    assert g.sh_degree == 0


def test_gsplat_splat_within_quantisation_error(tmp_path):
    params = random_export_params(500, 0, seed=50)
    params["opacities"][:3] = torch.tensor([-30.0, 30.0, 0.0])  # a = 0, 255 and 127
    path = tmp_path / "model.splat"
    export_splats(**params, format="splat", save_to=str(path))
    loaded = load_gaussians(path)
    g = loaded.gaussians
    order = sort_centers(params["means"], torch.arange(500))
    want = {k: v[order] for k, v in params.items()}
    assert (loaded.format, loaded.file_count, loaded.non_finite) == ("splat", 500, 0)
    assert g.sh_degree == 0

    assert torch.equal(g.means, want["means"])
    assert torch.equal(g.scales, torch.exp(want["scales"]))  # stored linear, float32
    # Colour and opacity bytes are trunc(255 v): v - byte/255 in [0, 1/255).
    rgb = (want["sh0"][:, 0] * SH_C0 + 0.5).double()
    diff = rgb - (0.5 + SH_C0 * g.sh[:, 0].double())
    inside = (rgb >= 0) & (rgb <= 1)
    assert inside.float().mean() > 0.7
    assert ((diff[inside] >= -SLACK) & (diff[inside] <= 1 / 255 + SLACK)).all()
    assert torch.equal(g.sh[:, 0][rgb > 1], torch.full_like(rgb, 0.5 / SH_C0).float()[rgb > 1])
    p = torch.sigmoid(want["opacities"]).double()
    diff = p - g.opacities.double()
    unclamped = (g.opacities > 2**-126) & (g.opacities < 1 - 2**-24)
    assert ((diff[unclamped] >= -SLACK) & (diff[unclamped] <= 1 / 255 + SLACK)).all()
    opac = dict(zip(want["opacities"].tolist(), g.opacities.tolist(), strict=True))
    assert opac[-30.0] == 2.0**-126 and opac[30.0] == np.float32(1 - 2**-24)
    # Quaternion bytes trunc(128 q + 128): q - (byte - 128)/128 in [0, 1/128].
    raw = read_splat_file(path)  # quaternions as decoded, before normalisation
    q = want["quats"].double()
    diff = q - torch.from_numpy(raw.quats).double()
    assert ((diff >= -SLACK) & (diff <= 1 / 128 + SLACK)).all()
    # After normalisation: the error vector has norm < 1/64, so the unit quaternion is
    # within a chord of 2 sin(asin(1/64) / 2) of the true one.
    chord = 2 * math.sin(math.asin(1 / 64) / 2)
    assert ((g.quats.double() - q).norm(dim=1) <= chord + SLACK).all()


def _splat_rows(n: int) -> np.ndarray:
    rows = np.zeros(n, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                              ("rot", "u1", 4)])
    rows["pos"] = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    rows["scale"] = 0.01
    rows["rgba"] = [200, 100, 50, 180]
    rows["rot"] = [255, 128, 128, 128]
    return rows


def test_splat_invalid_rows_are_dropped_and_counted(tmp_path):
    rows = _splat_rows(8)
    rows["pos"][1, 2] = np.nan
    rows["scale"][3, 0] = np.inf
    rows["rot"][4] = [128, 128, 128, 128]  # zero quaternion
    rows["rgba"][5, 3] = 0
    rows["rgba"][6, 3] = 255
    path = tmp_path / "bad_rows.splat"
    path.write_bytes(rows.tobytes())
    loaded = load_gaussians(path)
    assert loaded.file_count == 8 and loaded.non_finite == 3
    assert np.array_equal(loaded.source_index, [0, 2, 5, 6, 7])
    g = loaded.gaussians
    assert torch.equal(g.means, torch.from_numpy(rows["pos"][[0, 2, 5, 6, 7]]))
    assert torch.equal(g.quats, torch.tensor([[1.0, 0, 0, 0]] * 5))
    assert g.opacities[2] == 2.0**-126 and g.opacities[3] == np.float32(1 - 2**-24)
    assert torch.allclose(g.sh[0, 0].double(),
                          (torch.tensor([200, 100, 50]) / 255 - 0.5).double() / SH_C0)


def test_format_is_sniffed_by_content(tmp_path):
    params = random_export_params(600, 1, seed=60)
    compressed = tmp_path / "model.bin"
    export_splats(**params, format="ply_compressed", save_to=str(compressed))
    assert load_gaussians(compressed).format == "compressed_ply"
    inria = tmp_path / "scene_without_extension"
    export_splats(**params, format="ply", save_to=str(inria))
    assert load_gaussians(inria).format == "inria_ply"
    ply_named_splat = tmp_path / "actually_a_ply.splat"
    ply_named_splat.write_bytes(inria.read_bytes())
    assert load_gaussians(ply_named_splat).format == "inria_ply"
    upper = tmp_path / "MODEL.SPLAT"
    upper.write_bytes(_splat_rows(3).tobytes())
    assert load_gaussians(upper).format == "splat"


def test_describe_and_summary_of_an_inria_file(tmp_path):
    cols = random_inria_columns(31, 2, seed=70, with_normals=True)
    cols["x"][4] = np.nan
    cols["scale_1"][9] = -np.inf
    path = write_plyfile(tmp_path / "tissue.ply", cols, byte_order=">")
    info = describe_gaussians(path)

    kept = np.setdiff1d(np.arange(31), [4, 9])
    means = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)[kept]
    assert info["file"] == str(path)
    assert (info["format"], info["encoding"]) == ("inria_ply", "binary_big_endian")
    assert (info["count"], info["file_count"], info["non_finite"]) == (29, 31, 2)
    assert info["sh_degree"] == 2 and info["has_normals"] is True
    assert info["bounds"] == {"min": means.min(0).tolist(), "max": means.max(0).tolist()}
    assert 0 < info["median_opacity"] < 1 and info["median_scale"] > 0
    assert json.loads(json.dumps(info)) == info

    text = format_summary(info)
    assert str(path) in text and "Inria 3DGS PLY" in text and "SH degree 2" in text
    assert "29 of 31" in text and "2 dropped" in text and "with normals" in text
    assert f"{means[:, 0].min():.4g}" in text


def test_describe_other_formats_and_an_empty_file(tmp_path):
    params = random_export_params(300, 0, seed=80)
    for fmt, name in (("ply_compressed", "c.ply"), ("splat", "s.splat")):
        path = tmp_path / name
        export_splats(**params, format=fmt, save_to=str(path))
        info = describe_gaussians(path)
        assert info["has_normals"] is False and info["sh_degree"] == 0
        assert info["non_finite"] == 0 and info["count"] == info["file_count"] > 0
        assert ("SuperSplat" if fmt == "ply_compressed" else ".splat") in format_summary(info)
    empty = write_plyfile(tmp_path / "empty.ply", random_inria_columns(0, 0, seed=0))
    info = describe_gaussians(empty)
    assert (info["count"], info["bounds"], info["median_opacity"]) == (0, None, None)
    assert "gaussians  0" in format_summary(info)
