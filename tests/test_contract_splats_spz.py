"""``.spz`` read by gs_contract.splats, against ``tests/spz_encoder.py``.

No ``.spz`` written by another implementation could be obtained with a licence that
allows committing it (the samples in github.com/nianticlabs/spz are stored as Git LFS
objects, not reachable here), so the files come from an independent encoder written
strictly from the format's documentation (see its docstring), not from the reader. The
axis conversion (spz stores RUB, the Inria PLY is RDF) is checked geometrically:
positions reflected, rotation matrices conjugated, and colours seen along reflected
directions, evaluated with gsplat's own SH function (an independent oracle).
"""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _eval_sh_bases_fast

from gs_backend.io import describe_gaussians, format_summary, load_gaussians
from gs_contract.errors import InputError
from gs_contract.splats import read_splat_file
from tests.io_helpers import corrupted, load_outcomes
from tests.spz_encoder import SpzContent, decoded, random_content, spz_bytes

RUB_TO_RDF = np.array([1.0, -1.0, -1.0])  # flip y and z


def _matrices(wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = (wxyz / np.linalg.norm(wxyz, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def _sh_colour(sh: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Colour (without the DC term) of ``[N, K-1, 3]`` bands along ``[M, 3]`` unit dirs."""
    k = sh.shape[1] + 1
    bases = _eval_sh_bases_fast(k, torch.from_numpy(dirs)).numpy()  # [M, K]
    return np.einsum("mk,nkc->nmc", bases[:, 1:], sh)


def _write(tmp_path, content: SpzContent, name: str = "model.spz", **kwargs):
    path = tmp_path / name
    path.write_bytes(spz_bytes(content, **kwargs))
    return path


@pytest.mark.parametrize("version", [1, 2, 3, 4])
@pytest.mark.parametrize("degree", [0, 1, 3])
def test_every_version_decodes_to_the_documented_values(tmp_path, version, degree):
    content = random_content(400, degree, seed=10 * version + degree)
    if version == 1:  # float16 positions: keep them in its exact integer range
        content = SpzContent(np.round(content.positions), content.alphas, content.dc,
                             content.log_scales, content.rotations, content.sh)
    path = _write(tmp_path, content, version=version)
    splat = read_splat_file(path)
    want = decoded(content, version)
    assert (splat.format, splat.version, splat.count, splat.sh_degree) == \
        ("spz", version, 400, degree)
    assert splat.encoding == ("zstd" if version == 4 else "gzip")
    assert splat.finite.all()
    # Fixed point (or float16) positions decode exactly, then y and z flip (RUB -> RDF).
    np.testing.assert_array_equal(splat.means, (want.positions * RUB_TO_RDF).astype(np.float32))
    np.testing.assert_allclose(np.log(splat.scales.astype(np.float64)), want.log_scales,
                               atol=1e-6)
    clamped = np.clip(want.alphas, 2.0**-126, 1 - 2.0**-24)
    np.testing.assert_allclose(splat.opacities, clamped, rtol=1e-7, atol=0)
    np.testing.assert_allclose(splat.sh[:, 0], want.dc, atol=1e-6)
    # Rotation: the file's R (RUB) seen in RDF axes is F R F.
    flip = np.diag(RUB_TO_RDF)
    want_r = flip @ _matrices(content.rotations[:, [3, 0, 1, 2]]) @ flip
    err = np.abs(_matrices(splat.quats.astype(np.float64)) - want_r).max()
    assert err < (1e-2 if version >= 3 else 0.2), err  # 9-bit vs 8-bit components
    if degree:
        # Colour along d (RDF) equals the file's colour along F d (RUB).
        dirs = np.random.default_rng(1).normal(size=(64, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        ours = _sh_colour(splat.sh[:, 1:].astype(np.float64), dirs)
        theirs = _sh_colour(want.sh, dirs * RUB_TO_RDF)
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
        assert np.abs(ours).max() > 0.1


def test_version_3_smallest_three_is_within_its_quantisation(tmp_path):
    content = random_content(2000, 0, seed=3)
    splat = read_splat_file(_write(tmp_path, content, version=3))
    q = splat.quats.astype(np.float64)
    want = content.rotations[:, [3, 0, 1, 2]] * np.array([1, 1, -1, -1])
    dist = np.minimum(np.linalg.norm(q - want, axis=1), np.linalg.norm(q + want, axis=1))
    # 3 components off by <= sqrt(1/2)/1022 each, the largest (>= 1/2) recovered: <= 4x.
    assert dist.max() <= 4 * math.sqrt(3) * math.sqrt(0.5) / 1022
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)


def test_flags_and_coordinate_system_extension(tmp_path):
    content = random_content(50, 1, seed=4)
    plain = read_splat_file(_write(tmp_path, content, "rub.spz"))
    assert plain.antialiased is False
    marked = read_splat_file(_write(tmp_path, content, "aa.spz", antialiased=True,
                                    coordinate_system=4))  # RUB, said explicitly
    assert marked.antialiased is True
    np.testing.assert_array_equal(marked.means, plain.means)
    # Data already in RDF (the PLY's axes) comes back unchanged.
    rdf = read_splat_file(_write(tmp_path, content, "rdf.spz", version=3, coordinate_system=6))
    np.testing.assert_array_equal(rdf.means, decoded(content).positions.astype(np.float32))
    # LUF (glTF axes): left and up differ from right and down, front is the same.
    luf = read_splat_file(_write(tmp_path, content, "luf.spz", coordinate_system=7))
    raw = decoded(content).positions
    np.testing.assert_array_equal(luf.means, (raw * np.array([-1, -1, 1])).astype(np.float32))
    with pytest.raises(InputError, match=r"RFD axes \(a rotated axis system\)"):
        read_splat_file(_write(tmp_path, content, "rfd.spz", coordinate_system=10))


def test_backend_load_and_info(tmp_path, capsys):
    content = random_content(30, 2, seed=5)
    path = _write(tmp_path, content, antialiased=True)
    loaded = load_gaussians(path)
    assert (loaded.format, loaded.file_count, loaded.non_finite) == ("spz", 30, 0)
    assert loaded.gaussians.sh_degree == 2
    assert torch.allclose(loaded.gaussians.quats.norm(dim=1), torch.ones(30), atol=1e-6)
    info = describe_gaussians(path)
    assert (info["format"], info["version"], info["encoding"]) == ("spz", 4, "zstd")
    assert info["antialiased"] is True and info["count"] == 30
    text = format_summary(info)
    assert "Niantic .spz version 4 (zstd), SH degree 2, antialiased" in text

    from gs_backend.cli import main

    assert main(["info", str(path), "--json"]) == 0
    assert '"format": "spz"' in capsys.readouterr().out


def _broken_files(content: SpzContent) -> dict[str, bytes]:
    v4 = spz_bytes(content, version=4)
    v3 = spz_bytes(content, version=3)
    header = bytearray(v4)
    header[4:8] = struct.pack("<I", 9)
    many = bytearray(v4)
    many[8:12] = struct.pack("<I", 2**31)
    degree4 = bytearray(v4)
    degree4[12] = 4
    streams = bytearray(v4)
    streams[15] = 3
    raw_v3 = gzip.decompress(v3)
    return {
        "short_header": v4[:20],
        "cut_stream": v4[:-7],
        "extra_bytes": v4 + b"\0\0",
        "flipped_stream": v4[:100] + bytes(b ^ 0x5A for b in v4[100:140]) + v4[140:],
        "version_9": bytes(header),
        "too_many_points": bytes(many),
        "sh_degree_4": bytes(degree4),
        "stream_count": bytes(streams),
        "cut_gzip": v3[: len(v3) // 2],
        "gzip_garbage": v3[:10] + bytes(range(200)),
        "gzip_not_spz": gzip.compress(b"hello, I am not a splat" * 10),
        "gzip_short_body": gzip.compress(raw_v3[:-50]),
        "gzip_long_body": gzip.compress(raw_v3 + b"\0" * 50),
        "gzip_v4_inside": gzip.compress(raw_v3[:4] + struct.pack("<I", 4) + raw_v3[8:]),
    }


def test_truncated_or_garbage_spz_is_one_clean_input_error(tmp_path):
    content = random_content(300, 1, seed=6)
    for name, data in _broken_files(content).items():
        path = tmp_path / f"{name}.spz"
        path.write_bytes(data)
        with pytest.raises(InputError) as info:
            load_gaussians(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message, (name, message)


def test_random_corruption_only_ever_raises_input_error(tmp_path):
    rng = np.random.default_rng(7)
    content = random_content(200, 2, seed=8)
    refused = 0
    for version in (2, 3, 4):
        variants = corrupted(spz_bytes(content, version=version), rng, cuts=15, flips=30)
        refused += load_outcomes(tmp_path / "mutant.spz", variants, read_splat_file)["refused"]
    assert refused > 40
