"""The add-on's pure extraction code (``blender_addon/core/extract_job.py``) under numpy 2.

Matrices are checked against values worked out by hand; the child process runs
``tests/blender/fake_extract_backend.py``, which implements the agreed ``gs-backend
extract`` contract (crop volumes, a stand-in automatic stage) without the add-on's code.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gs_contract.splats.inria import save_inria_ply
from tests.test_addon_numpy2 import addon_module

# numpy 2 deprecations are errors here (as in test_addon_numpy2.py).
pytestmark = [pytest.mark.filterwarnings("error::DeprecationWarning"),
              pytest.mark.filterwarnings("error::FutureWarning")]
ej = addon_module("core.extract_job")
FAKE = Path(__file__).parent / "blender" / "fake_extract_backend.py"


def translate(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = x, y, z
    return m


def rot_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    return m


def apply(m: np.ndarray, p) -> np.ndarray:
    return (m @ np.append(np.asarray(p, dtype=float), 1.0))[:3]


# ------------------------------------------------------------------------------ matrices


def test_capture_from_volume_by_hand():
    """Proxy: PLY -> world = translate(10, 0, 0) . rotZ(90) . scale 2. Empty at (10, 2, 0),
    scale (1, 2, 3), display size 0.5: its box spans x 9.5..10.5, y 1..3, z -1.5..1.5."""
    proxy = translate(10, 0, 0) @ rot_z(90) @ np.diag([2.0, 2.0, 2.0, 1.0])
    empty = translate(10, 2, 0) @ np.diag([1.0, 2.0, 3.0, 1.0])
    m = ej.capture_from_volume(proxy, empty, 0.5, "box")
    # Volume corner (1, 1, 1) -> world (10.5, 3, 1.5) -> minus (10, 0, 0): (0.5, 3, 1.5)
    # -> rotZ(-90): (3, -0.5, 1.5) -> / 2: (1.5, -0.25, 0.75).
    np.testing.assert_allclose(apply(m, (1, 1, 1)), (1.5, -0.25, 0.75), atol=1e-12)
    # Volume centre -> world (10, 2, 0) -> (0, 2, 0) -> (2, 0, 0) -> (1, 0, 0).
    np.testing.assert_allclose(apply(m, (0, 0, 0)), (1.0, 0.0, 0.0), atol=1e-12)
    assert m.dtype == np.float64 and m.shape == (4, 4)
    np.testing.assert_array_equal(ej.capture_from_volume(proxy, empty, 0.5, "sphere"), m)


def test_the_cylinder_axis_is_the_circle_empty_local_y():
    """A Circle empty is drawn in its local XZ plane: the cylinder's axis (volume z) is
    the empty's local Y, its cross-section the XZ circle."""
    empty = np.diag([1.0, 3.0, 1.0, 1.0])  # a long cylinder along Y, half-length 3 * 2
    m = ej.capture_from_volume(np.eye(4), empty, 2.0, "cylinder")
    np.testing.assert_allclose(np.abs(apply(m, (0, 0, 1))), (0, 6, 0), atol=1e-12)
    np.testing.assert_allclose(np.abs(apply(m, (1, 0, 0))), (2, 0, 0), atol=1e-12)
    np.testing.assert_allclose(np.abs(apply(m, (0, 1, 0))), (0, 0, 2), atol=1e-12)
    assert np.linalg.det(m[:3, :3]) > 0, "a rotation, not a mirror"


@pytest.mark.parametrize("proxy, empty, size, message", [
    (np.eye(4), np.eye(4), 0.0, "crop empty 'E': its display size must be > 0"),
    (np.eye(4), np.eye(4), float("nan"), "its display size must be > 0"),
    (np.eye(4), np.diag([1.0, 0.0, 1.0, 1.0]), 1.0, "crop empty 'E''s transform is not "
                                                    "invertible (a zero scale?)"),
    (np.diag([0.0, 0.0, 0.0, 1.0]), np.eye(4), 1.0, "the splat object's transform is not "
                                                    "invertible"),
    (np.full((4, 4), np.nan), np.eye(4), 1.0, "the splat object's transform is not "
                                              "invertible"),
])
def test_volumes_that_cannot_be_placed(proxy, empty, size, message):
    with pytest.raises(ej.ExtractError, match=re.escape(message)):
        ej.capture_from_volume(proxy, empty, size, "box", "E")


def test_tiny_but_valid_scales_are_accepted():
    """SfM captures come in any units: tiny and huge scales are valid volumes."""
    for scale in (1e-6, 1e6):
        sized = np.diag([scale] * 3 + [1.0])
        m = ej.capture_from_volume(np.eye(4), sized, 1.0, "box")  # a tiny / huge empty
        np.testing.assert_allclose(apply(m, (1, 1, 1)), (scale,) * 3)
        m = ej.capture_from_volume(sized, np.eye(4), 1.0, "box")  # a tiny / huge proxy
        np.testing.assert_allclose(apply(m, (1, 1, 1)), (1 / scale,) * 3)


# ---------------------------------------------------------------------- crop file, argv


def test_crop_file(tmp_path):
    volumes = [ej.CropVolume("box", "keep", translate(1, 2, 3), "A"),
               ej.CropVolume("cylinder", "remove", np.diag([1.0, 2.0, 3.0, 1.0]), "B")]
    path = ej.write_crop_file(tmp_path / "crop.json", volumes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crop.json"]  # no temp file left
    assert json.loads(path.read_text()) == {
        "format": "gs-crop", "version": 1,
        "volumes": [{"shape": "box", "mode": "keep",
                     "capture_from_volume": [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3],
                                             [0, 0, 0, 1]]},
                    {"shape": "cylinder", "mode": "remove",
                     "capture_from_volume": [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 3, 0],
                                             [0, 0, 0, 1]]}]}


def test_extract_argv():
    assert ej.extract_argv(["gs"], "/c.ply", "/w/t.ply", "/w/k.npy") == \
        ["gs", "extract", "/c.ply", "--out", "/w/t.ply", "--keep-out", "/w/k.npy", "--json"]
    assert ej.extract_argv(["py", "-m", "gs_backend"], Path("/c.ply"), "/t", "/k",
                           crop=Path("/w/crop.json"), auto=False)[3:] == \
        ["extract", "/c.ply", "--out", "/t", "--keep-out", "/k", "--json",
         "--crop", "/w/crop.json", "--no-auto"]


# -------------------------------------------------------------------------------- report


SPEC_REPORT = {
    "capture": "/abs/capture.ply", "format": "inria_ply", "rows": 1000000, "usable": 999990,
    "kept": 48213, "removed": 951787,
    "stages": [{"name": "unusable", "removed": 10, "params": {}},
               {"name": "crop", "removed": 800000, "params": {"volumes": 2}},
               {"name": "auto.distance", "removed": 150000, "params": {"radius": 0.12}}],
    "out": "/abs/TOOL.ply", "keep_out": "/abs/KEEP.npy", "preview": None}


def test_report_and_summary():
    report = ej.parse_report(json.dumps(SPEC_REPORT, indent=2))
    assert (report.rows, report.kept) == (1000000, 48213)
    assert report.summary() == ("kept 48,213 of 1,000,000 Gaussians (stages: unusable -10, "
                                "crop -800,000, auto.distance -150,000)")
    assert ej.parse_report('{"rows": 3, "kept": 3}').summary() == \
        "kept 3 of 3 Gaussians (stages: none)"


@pytest.mark.parametrize("text, message", [
    ("", "is not JSON (stdout began with 'nothing')"),
    ("Loading...\n{}", "is not JSON (stdout began with 'Loading...')"),
    ("[1, 2]", "is not a JSON object"),
    ('{"kept": 1}', "'rows' is not a count: None"),
    ('{"rows": 5, "kept": true}', "'kept' is not a count: True"),
    ('{"rows": 5, "kept": -1}', "'kept' is not a count: -1"),
    ('{"rows": 5, "kept": 6}', "kept 6 of only 5 rows"),
    ('{"rows": 5, "kept": 1, "stages": {}}', "'stages' is not a list"),
    ('{"rows": 5, "kept": 1, "stages": [{"removed": 1}]}', "stages[0].name is not a"),
    ('{"rows": 5, "kept": 1, "stages": [{"name": "a", "removed": 1.5}]}',
     "stages[0]: 'removed' is not a count: 1.5"),
])
def test_bad_reports(text, message):
    with pytest.raises(ej.ExtractError, match=re.escape(message)):
        ej.parse_report(text)


# ---------------------------------------------------------------------------- KEEP.npy


def test_read_keep(tmp_path):
    path = tmp_path / "keep.npy"
    for dtype in (np.int64, np.int32, np.uint16):
        np.save(path, np.array([0, 4, 9], dtype=dtype))
        keep = ej.read_keep(path, 10)
        assert keep.dtype == np.int64 and keep.tolist() == [0, 4, 9]
    np.save(path, np.array([], dtype=np.int64))
    assert ej.read_keep(path, 10).size == 0


@pytest.mark.parametrize("array, message", [
    (np.array([[1, 2]]), "expected a 1-D integer array, found int64 of shape \\(1, 2\\)"),
    (np.array([1.0, 2.0]), "expected a 1-D integer array, found float64"),
    (np.array([2, 1]), "must be sorted, unique and in \\[0, 10\\)"),
    (np.array([1, 1]), "must be sorted, unique"),
    (np.array([-1, 3]), "must be sorted, unique"),
    (np.array([3, 10]), "must be sorted, unique"),
])
def test_bad_keep_files(tmp_path, array, message):
    path = tmp_path / "keep.npy"
    np.save(path, array)
    with pytest.raises(ej.ExtractError, match=message):
        ej.read_keep(path, 10)


def test_unreadable_keep_files(tmp_path):
    with pytest.raises(ej.ExtractError, match="cannot read the kept rows"):
        ej.read_keep(tmp_path / "missing.npy", 10)
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ej.ExtractError, match="cannot read the kept rows"):
        ej.read_keep(tmp_path / "text.npy", 10)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ej.ExtractError, match="cannot read the kept rows"):
        ej.read_keep(tmp_path / "objects.npy", 10)


def test_vertices_to_delete_keeps_the_intersection():
    index = np.array([7, 2, 9, 4, 0], dtype=np.int32)  # proxy order, rows 1, 3, 5... gone
    drop = ej.vertices_to_delete(index, np.array([0, 1, 2, 3, 9]))
    assert drop.tolist() == [True, False, False, True, False]
    assert ej.vertices_to_delete(index, np.array([], dtype=np.int64)).all()


# ----------------------------------------------------------------------- child process


def write_row_capture(path: Path, n: int = 10) -> None:
    """``n`` Gaussians at (i, 0, 0), i = 0..n-1."""
    means = np.zeros((n, 3), dtype=np.float32)
    means[:, 0] = np.arange(n)
    quats = np.tile(np.array([1, 0, 0, 0], dtype=np.float32), (n, 1))
    save_inria_ply(path, means, quats, np.full((n, 3), 0.01, dtype=np.float32),
                   np.full(n, 0.5, dtype=np.float32), np.zeros((n, 1, 3), dtype=np.float32))


def run_process(process, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not process.poll().finished:
        assert time.monotonic() < deadline, "the fake backend did not finish in time"
        time.sleep(0.02)
    return process.state


def fake_command(mode: str = "ok") -> str:
    return f"{sys.executable} {FAKE} --mode {mode}"


def test_extract_process_end_to_end(tmp_path):
    """Box x 0.5..4.5 keeps rows 1-4, a sphere of radius 0.5 at x = 3 removes row 3; the
    fake's automatic stage would remove multiples of 5 (none of these)."""
    capture = tmp_path / "capture.ply"
    write_row_capture(capture)
    box = ej.capture_from_volume(np.eye(4), translate(2.5, 0, 0) @ np.diag([2.0, 1, 1, 1]),
                                 1.0, "box")
    sphere = ej.capture_from_volume(np.eye(4), translate(3, 0, 0), 0.5, "sphere")
    process = ej.ExtractProcess.start_extract(
        fake_command(), capture, [ej.CropVolume("box", "keep", box),
                                  ej.CropVolume("sphere", "remove", sphere)], rows=10)
    assert sorted(p.name for p in process.work_dir.iterdir()) == ["crop.json"]
    state = run_process(process)
    assert state.succeeded, state.error
    assert process.keep.tolist() == [1, 2, 4]
    assert process.report.summary() == ("kept 3 of 10 Gaussians (stages: unusable -0, "
                                        "crop -7, auto.fake -0)")
    process.cleanup()
    assert not process.work_dir.exists()


def test_extract_process_refuses_a_changed_capture(tmp_path):
    capture = tmp_path / "capture.ply"
    write_row_capture(capture)
    process = ej.ExtractProcess.start_extract(fake_command(), capture, [], rows=12)
    state = run_process(process)
    assert not state.succeeded and process.keep is None
    assert state.error == ("the backend read 10 Gaussians but the splat object was imported "
                           "with 12: the file changed since the import; import it again")
    process.cleanup()


def test_extract_process_exit_2_keeps_the_stderr_line(tmp_path):
    capture = tmp_path / "capture.ply"
    write_row_capture(capture)
    state = run_process(ej.ExtractProcess.start_extract(fake_command("fail"), capture, []))
    assert state.returncode == 2
    assert state.error == f"gs-backend: error: {capture}: property scale_0: not a number"
