"""Broken inputs: each raises one InputError naming the file and the specific problem."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import plyfile
import pytest
from gsplat.exporter import export_splats

from gs_backend.io import describe_gaussians, load_gaussians
from gs_contract.errors import InputError
from tests.io_helpers import (
    corrupted,
    inria_names,
    load_outcomes,
    random_export_params,
    random_inria_columns,
    write_plyfile,
)


def _error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_gaussians(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    return message


def _header(*lines: str) -> bytes:
    return ("\n".join(["ply", *lines, "end_header"]) + "\n").encode("ascii")


def test_truncated_binary_body_says_rows_expected_and_present(tmp_path):
    path = write_plyfile(tmp_path / "cut.ply", random_inria_columns(10, 1, seed=1))
    data = path.read_bytes()
    row = 4 * len(inria_names(1))
    path.write_bytes(data[:-(3 * row + 5)])  # 6 full rows and a partial one remain
    message = _error(path)
    assert "element vertex" in message and "truncated" in message
    assert re.search(r"declares 10 rows .* only 6 complete rows", message), message


def test_truncated_ascii_body(tmp_path):
    path = write_plyfile(tmp_path / "cut.ply", random_inria_columns(10, 0, seed=2), text=True)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:-4]) + b"\n")  # the last 3 rows gone
    message = _error(path)
    assert "truncated" in message and "declares 10 rows" in message and "only 7" in message


def test_ascii_row_that_does_not_parse(tmp_path):
    path = write_plyfile(tmp_path / "text.ply", random_inria_columns(5, 0, seed=3), text=True)
    lines = path.read_bytes().split(b"\n")
    row2 = lines.index(b"end_header") + 3
    words = lines[row2].split()
    assert len(words) == 14
    lines[row2] = b" ".join([words[0], b"abc", *words[2:]])
    path.write_bytes(b"\n".join(lines))
    message = _error(path)
    line = row2 + 1  # 1-based line number in the file
    assert f"element vertex row 2 (line {line}): 'abc' is not a number" in message
    lines[row2] = b"1 2 3"
    path.write_bytes(b"\n".join(lines))
    assert f"element vertex row 2 (line {line}): expected 14 values, found 3" in _error(path)


def test_missing_properties_are_named(tmp_path):
    cols = random_inria_columns(4, 1, seed=4)
    del cols["scale_2"]
    assert _error(write_plyfile(tmp_path / "a.ply", cols)).endswith("missing property scale_2")
    del cols["rot_0"], cols["opacity"]
    message = _error(write_plyfile(tmp_path / "b.ply", cols))
    assert message.endswith("missing properties opacity, scale_2, rot_0")
    cols = random_inria_columns(4, 1, seed=4)
    del cols["f_rest_5"]
    cols["f_rest_99"] = cols["f_rest_0"]  # still 9 f_rest, but f_rest_5 is absent
    assert _error(write_plyfile(tmp_path / "c.ply", cols)).endswith("missing property f_rest_5")


@pytest.mark.parametrize("count", [3, 10, 44, 72])
def test_f_rest_count_that_fits_no_sh_degree(tmp_path, count):
    cols = random_inria_columns(4, 0, seed=5)
    cols.update({f"f_rest_{i}": cols["x"] for i in range(count)})
    message = _error(write_plyfile(tmp_path / "rest.ply", cols))
    assert f"{count} f_rest properties fit no SH degree" in message


def test_plain_point_cloud_is_named_as_such(tmp_path):
    cols = {n: np.zeros(5, np.float32) for n in ("x", "y", "z", "nx", "ny", "nz")}
    cols.update({c: np.full(5, 200) for c in ("red", "green", "blue")})
    path = write_plyfile(tmp_path / "scan.ply", cols, dtypes=dict.fromkeys(("red", "green",
                                                                            "blue"), "u1"))
    message = _error(path)
    assert "point cloud" in message and "not a Gaussian splat" in message
    assert "x, y, z, nx, ny, nz, red, green, blue" in message


def test_mesh_without_vertex_element(tmp_path):
    path = tmp_path / "faces.ply"
    path.write_bytes(_header("format ascii 1.0", "element face 1",
                             "property list uchar int vertex_indices") + b"3 0 1 2\n")
    assert "no element 'vertex'" in _error(path)


def test_random_bytes_are_not_a_ply(tmp_path):
    path = tmp_path / "noise.ply"
    path.write_bytes(np.random.default_rng(6).bytes(4096))
    message = _error(path)
    assert "not a Gaussian splat file" in message and "'ply'" in message


def test_empty_missing_and_directory(tmp_path):
    empty = tmp_path / "empty.ply"
    empty.write_bytes(b"")
    assert _error(empty).endswith("the file is empty (0 bytes)")
    empty_splat = tmp_path / "empty.splat"
    empty_splat.write_bytes(b"")
    assert _error(empty_splat).endswith("the file is empty (0 bytes)")
    assert _error(tmp_path / "nowhere.ply").endswith("file not found")
    folder = tmp_path / "folder.ply"
    folder.mkdir()
    assert _error(folder).endswith("folder.ply: a directory, not a file")


def test_unreadable_file(tmp_path, monkeypatch):
    from gs_contract.splats import reader

    path = write_plyfile(tmp_path / "locked.ply", random_inria_columns(3, 0, seed=7))

    def deny(file, *args, **kwargs):  # tests run as root, where chmod 000 does not deny
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(reader, "open", deny, raising=False)
    assert _error(path).endswith("permission denied: cannot read the file")


@pytest.mark.parametrize(("header", "expected"), [
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n",
     "no 'end_header' line"),
    (_header("format binary_middle_endian 1.0", "element vertex 0"), "unknown format"),
    (_header("element vertex 0", "property float x"), "no 'format' line"),
    (_header("format ascii 1.0", "element vertex many"), "bad element line"),
    (_header("format ascii 1.0", "element vertex 1", "property float7 x"), "bad property line"),
    (_header("format ascii 1.0", "property float x"), "property before any element"),
    (_header("format ascii 1.0", "elephant vertex 1"), "unknown keyword 'elephant'"),
    (_header("format ascii 1.0", "element vertex 0", "property float x", "property float x"),
     "property x is declared twice"),
    (b"ply\nformat ascii 1.0\ncomment caf\xe9\nend_header\n", "not ASCII text"),
])
def test_unreadable_header(tmp_path, header, expected):
    path = tmp_path / "header.ply"
    path.write_bytes(header)
    message = _error(path)
    assert expected in message, message


def test_splat_size_not_a_multiple_of_32(tmp_path):
    path = tmp_path / "odd.splat"
    path.write_bytes(bytes(32 * 3 + 7))
    message = _error(path)
    assert "103 bytes" in message and "not a multiple of 32" in message


def _compressed_file(tmp_path: Path, degree: int = 1) -> Path:
    path = tmp_path / "compressed.ply"
    export_splats(**random_export_params(600, degree, seed=8), format="ply_compressed",
                  save_to=str(path))
    return path


def test_truncated_compressed_ply(tmp_path):
    path = _compressed_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    message = _error(path)
    assert "element sh" in message and "truncated" in message
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    path.write_bytes(data[:header_end + 3 * 18 * 4 + 16 * 100 + 3])
    message = _error(path)
    assert "element vertex" in message and "declares 600 rows" in message
    assert "only 100 complete rows" in message


def test_compressed_ply_with_wrong_chunk_count_or_missing_fields(tmp_path):
    data = _compressed_file(tmp_path).read_bytes()
    path = tmp_path / "bad.ply"
    path.write_bytes(data.replace(b"element chunk 3\n", b"element chunk 2\n"))
    assert "has 2 rows, but 600 vertices in chunks of 256 need 3" in _error(path)
    path.write_bytes(data.replace(b"property float max_scale_y\n", b"property float foo\n"))
    assert _error(path).endswith("element chunk: missing property max_scale_y")
    path.write_bytes(data.replace(b"uint packed_color\n", b"float packed_color\n"))
    assert "packed_color: must be an integer" in _error(path)
    path.write_bytes(data.replace(b"uchar f_rest_8\n", b"uchar g_rest_8\n"))
    assert "8 f_rest properties fit no SH degree" in _error(path)


def test_list_property_in_vertex_element(tmp_path):
    cols = random_inria_columns(2, 0, seed=9)
    table = np.empty(2, dtype=[*[(n, "f4") for n in cols], ("tags", object)])
    for n in cols:
        table[n] = cols[n]
    table["tags"] = [np.array([1, 2], np.int32), np.array([3], np.int32)]
    path = tmp_path / "lists.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(table, "vertex")]).write(str(path))
    assert "list properties are not supported" in _error(path)


def test_corrupted_files_only_ever_raise_input_error(tmp_path):
    """Truncations and flipped header bytes of valid files: load or InputError, nothing else."""
    rng = np.random.default_rng(10)
    sources = [
        write_plyfile(tmp_path / "le.ply", random_inria_columns(20, 1, seed=11)),
        write_plyfile(tmp_path / "ascii.ply", random_inria_columns(20, 1, seed=12), text=True),
        _compressed_file(tmp_path, degree=2),
    ]
    outcomes = {"loaded": 0, "refused": 0}
    for source in sources:
        data = source.read_bytes()
        variants = corrupted(data, rng, cuts=25, flips=40, span=data.index(b"end_header") + 10)
        for key, count in load_outcomes(tmp_path / "mutant.ply", variants,
                                        describe_gaussians).items():
            outcomes[key] += count
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 0


def test_asset_without_gaussians_is_warned_about_when_rendered(tmp_path):
    """A file with 0 rows is valid, but rendering it is almost surely a mistake: the
    render says so in one warning line (and still renders the rest)."""
    import json

    import torch

    from gs_backend.dataset.render_run import RenderOptions, render_dataset
    from gs_contract.protocol import LogEvent
    from gs_contract.scenario import load_scenario
    from tests.scenario_factory import scenario_dict, write_scenario

    data = scenario_dict(frames=1)
    data["assets"]["tool"]["ply"] = "assets/empty.ply"
    path = write_scenario(tmp_path, data)
    write_plyfile(tmp_path / "assets" / "empty.ply", random_inria_columns(0, 1, seed=0))

    class Recorder:
        def __init__(self) -> None:
            self.events: list[object] = []

        def emit(self, event: object) -> None:
            self.events.append(event)

    progress = Recorder()
    options = RenderOptions(out_dir=tmp_path / "out", device=torch.device("cpu"))
    render_dataset(load_scenario(path), options, progress)
    empty = tmp_path / "assets" / "empty.ply"
    logs = [(e.level, e.message) for e in progress.events if isinstance(e, LogEvent)]
    assert logs == [("warning", f"asset 'tool' has no Gaussians to render, so its "
                                f"objects are invisible ({empty})")]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["frames"]) == 1
