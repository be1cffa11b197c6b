"""gs_contract.splats: what only the shared reader does (the format readers themselves
are tested through the backend's loader in test_io_*.py): its import boundary, paths
that are not regular files, bodies that disagree with their header, the DC-only read
the add-on uses, and the one rule for unusable rows."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from gs_contract.errors import InputError
from gs_contract.splats import read_splat_file, usable_rows
from tests.io_helpers import inria_names, random_inria_columns, write_plyfile


def _error(path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        read_splat_file(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_import_loads_neither_torch_nor_bpy():
    code = ("import sys, gs_contract.splats; "
            "print(sorted(m for m in ('torch', 'bpy', 'gsplat', 'cv2', 'gs_backend', "
            "'plyfile', 'zstandard') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert run.stdout.strip() == "[]"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_character_device_is_refused_without_reading():
    assert _error("/dev/zero") == "/dev/zero: a character device (such as /dev/zero), " \
        "not a regular file"


def test_fifo_is_refused_without_opening(tmp_path):
    fifo = tmp_path / "pipe.ply"
    os.mkfifo(fifo)  # opening it for reading would block forever: no writer
    assert _error(fifo).endswith("pipe.ply: a named pipe (FIFO), not a regular file")


def test_symlink_loop_and_broken_link_say_what_they_are(tmp_path):
    loop = tmp_path / "loop.ply"
    loop.symlink_to(tmp_path / "loop.ply")
    assert _error(loop).endswith("loop.ply: a symbolic link loop")
    broken = tmp_path / "broken.ply"
    broken.symlink_to(tmp_path / "nowhere.ply")
    assert _error(broken).endswith("broken.ply: a broken symbolic link (its target does "
                                   "not exist)")
    good = write_plyfile(tmp_path / "good.ply", random_inria_columns(3, 0, seed=1))
    link = tmp_path / "link.ply"
    link.symlink_to(good)
    assert read_splat_file(link).count == 3


def _ascii_lines(tmp_path, n=5):
    path = write_plyfile(tmp_path / "text.ply", random_inria_columns(n, 0, seed=2), text=True)
    return path, path.read_bytes().split(b"\n")


def test_ascii_rows_with_the_wrong_token_count_name_the_line(tmp_path):
    path, lines = _ascii_lines(tmp_path)
    first = lines.index(b"end_header") + 1  # 0-based index of the first row
    # Re-flowed: row 1 loses its last value, row 2 gains it (same total count).
    last = lines[first + 1].rsplit(b" ", 1)
    lines[first + 1], lines[first + 2] = last[0], last[1] + b" " + lines[first + 2]
    path.write_bytes(b"\n".join(lines))
    assert _error(path).endswith(f"element vertex row 1 (line {first + 2}): expected 14 "
                                 "values, found 13")


def test_ascii_body_with_more_rows_than_declared(tmp_path):
    path, lines = _ascii_lines(tmp_path)
    first = lines.index(b"end_header") + 1
    extra = lines[first:first + 2]
    path.write_bytes(b"\n".join(lines[:-1] + extra) + b"\n\n")
    message = _error(path)
    assert f"line {first + 6}: 2 rows follow the last declared row (element vertex)" in message


def test_binary_body_with_more_rows_than_declared(tmp_path):
    path = write_plyfile(tmp_path / "more.ply", random_inria_columns(10, 1, seed=3))
    data = path.read_bytes()
    row = 4 * len(inria_names(1))
    path.write_bytes(data.replace(b"element vertex 10", b"element vertex 7"))
    message = _error(path)
    assert message.endswith(f"body: {3 * row} bytes follow the last declared row (room for 3 "
                            "more vertex rows: the header's count 7 is lower than what the "
                            "body holds); refusing to guess which data is meant")
    assert _error(path, dc_only=True) == message  # the block reader checks the same
    path.write_bytes(data + b"\n")
    assert "body: 1 bytes follow the last declared row; refusing" in _error(path)


@pytest.mark.parametrize("encoding", ["le", "be", "ascii"])
def test_dc_only_read_matches_the_full_read(tmp_path, encoding):
    cols = random_inria_columns(60, 3, seed=4, with_normals=True)
    cols["f_rest_40"][7] = np.nan  # only in a band the DC-only read does not return
    cols["rot_2"][9] = np.inf
    kwargs = {"le": {}, "be": {"byte_order": ">"}, "ascii": {"text": True}}[encoding]
    path = write_plyfile(tmp_path / "model.ply", cols, **kwargs)
    full, dc = read_splat_file(path), read_splat_file(path, dc_only=True)
    assert (dc.sh_degree, dc.sh.shape, full.sh.shape) == (3, (60, 1, 3), (60, 16, 3))
    for name in ("means", "quats", "scales", "opacities", "finite"):
        np.testing.assert_array_equal(getattr(dc, name), getattr(full, name), err_msg=name)
    np.testing.assert_array_equal(dc.sh[:, 0], full.sh[:, 0])
    assert np.flatnonzero(~dc.finite).tolist() == [7, 9]


def test_block_reads_match_one_read(tmp_path, monkeypatch):
    from gs_contract.splats import ply

    path = write_plyfile(tmp_path / "blocks.ply", random_inria_columns(1000, 1, seed=5),
                         dtypes={"x": "f8", "opacity": "f8"})  # mixed types: records
    whole = read_splat_file(path)
    monkeypatch.setattr(ply, "BLOCK_BYTES", 1000)  # a dozen rows per block
    blocks = read_splat_file(path)
    for name in ("means", "quats", "scales", "opacities", "sh", "finite"):
        np.testing.assert_array_equal(getattr(blocks, name), getattr(whole, name))


def test_usable_rows_rule(tmp_path):
    cols = random_inria_columns(8, 0, seed=6)
    cols["x"][1] = np.nan
    cols["scale_0"][2] = 200.0  # exp overflows float32
    for i in range(4):
        cols[f"rot_{i}"][3] = 0.0  # zero quaternion: finite, but no rotation
    cols["opacity"][4] = 1e6  # saturates to the largest opacity: still usable
    splat = read_splat_file(write_plyfile(tmp_path / "rows.ply", cols))
    assert splat.finite.tolist() == [True, False, False, True, True, True, True, True]
    assert np.flatnonzero(~usable_rows(splat)).tolist() == [1, 2, 3]


def test_files_without_rows_read_as_empty(tmp_path):
    from tests.spz_encoder import random_content, spz_bytes

    for degree in range(4):
        path = write_plyfile(tmp_path / f"empty{degree}.ply",
                             random_inria_columns(0, degree, seed=0))
        for dc_only in (False, True):
            splat = read_splat_file(path, dc_only=dc_only)
            assert (splat.count, splat.sh_degree) == (0, degree)
            assert splat.sh.shape == (0, 1 if dc_only else (degree + 1) ** 2, 3)
    for version in (3, 4):
        path = tmp_path / f"empty{version}.spz"
        path.write_bytes(spz_bytes(random_content(0, 2, seed=0), version=version))
        splat = read_splat_file(path)
        assert (splat.count, splat.sh.shape, splat.version) == (0, (0, 9, 3), version)
