"""``gs-backend extract``: stages, outputs, the --json report, refusals, Ctrl-C.

Captures are made here with known membership: a dense red "tool" blob at a known place,
scattered blue "background" rows, and a few unusable rows. Files are written with
plyfile (an independent writer) and the output read back with plyfile, so "exact
copies" is checked against the raw stored values. The automatic method is replaced by a
stand-in where its result matters (its own tests live beside it), so these tests check
the command around it, whatever method is plugged in.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gs_backend.cli import main
from gs_backend.extract import pipeline
from gs_backend.extract.auto import AutoResult, StageReport
from gs_contract.crop import crop_document, save_crop
from gs_contract.splats import SH_C0, read_splat_file
from tests.io_helpers import random_inria_columns, read_plyfile_columns, write_plyfile

ROOT = Path(__file__).resolve().parents[1]
TOOL_CENTRE = np.array([3.0, -2.0, 10.0])
TOOL_RADIUS = 0.5
RED, BLUE = (0.9, 0.1, 0.1), (0.1, 0.2, 0.9)


def make_capture(path: Path, *, n_tool: int = 300, n_background: int = 700, degree: int = 2,
                 text: bool = False, seed: int = 0, tidy: bool = False,
                 background_radius: tuple[float, float] = (2.0, 50.0)
                 ) -> dict[str, np.ndarray]:
    """Write a capture; return its raw columns plus ``tool`` / ``usable`` masks.

    The tool fills a ball of radius TOOL_RADIUS around TOOL_CENTRE; the background
    lies at distances ``background_radius`` from it.

    Values are random (scales over 5 orders of magnitude, any opacity, random higher SH
    bands) unless ``tidy``: then scales are 0.03 and opacities 0.9, for pictures."""
    n = n_tool + n_background
    cols = random_inria_columns(n, degree, seed)
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n_tool, 3))
    tool = TOOL_CENTRE + d / np.linalg.norm(d, axis=1, keepdims=True) \
        * TOOL_RADIUS * rng.uniform(0, 0.9, (n_tool, 1)) ** (1 / 3)
    d = rng.normal(size=(n_background, 3))
    background = TOOL_CENTRE + d / np.linalg.norm(d, axis=1, keepdims=True) \
        * rng.uniform(*background_radius, (n_background, 1))
    order = rng.permutation(n)  # members spread through the file
    means = np.concatenate([tool, background])[order].astype(np.float32)
    is_tool = (np.arange(n) < n_tool)[order]
    dc = np.where(is_tool[:, None], RED, BLUE)
    dc = (dc + rng.normal(0, 0.01, (n, 3)) - 0.5) / SH_C0
    for i, axis in enumerate("xyz"):
        cols[axis] = means[:, i]
    for c in range(3):
        cols[f"f_dc_{c}"] = dc[:, c].astype(np.float32)
    if tidy:
        for name in cols:
            if name.startswith("f_rest_"):
                cols[name][:] = 0.0
            elif name.startswith("scale_"):
                cols[name][:] = np.log(0.03)
        cols["opacity"][:] = np.log(0.9 / 0.1)
    usable = np.ones(n, dtype=bool)
    for row, name in ((5, "x"), (17, "f_rest_3" if degree else "opacity"), (40, "scale_1")):
        cols[name][row] = np.nan
        usable[row] = False
    for i in range(4):
        cols[f"rot_{i}"][60] = 0.0  # a zero quaternion: unusable
    usable[60] = False
    write_plyfile(path, cols, text=text)
    return {**cols, "tool": is_tool, "usable": usable}


def sphere_crop(path: Path, centre: np.ndarray = TOOL_CENTRE, radius: float = 1.0,
                mode: str = "keep") -> Path:
    m = np.diag([radius, radius, radius, 1.0])
    m[:3, 3] = centre
    save_crop(path, crop_document([("sphere", mode, m)]))  # type: ignore[list-item]
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["extract", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_crop_keeps_exact_copies_of_the_rows_inside(tmp_path: Path, capsys) -> None:
    cap = make_capture(tmp_path / "capture.ply")
    crop = sphere_crop(tmp_path / "crop.json")
    out, keep = tmp_path / "tool.ply", tmp_path / "keep.npy"
    code, stdout, _ = run([str(tmp_path / "capture.ply"), "--out", str(out), "--keep-out",
                           str(keep), "--crop", str(crop), "--no-auto", "--json"], capsys)
    assert code == 0
    means = np.stack([cap["x"], cap["y"], cap["z"]], axis=1).astype(np.float64)
    expected = np.flatnonzero(cap["usable"] & (np.linalg.norm(means - TOOL_CENTRE, axis=1)
                                               <= 1.0))
    np.testing.assert_array_equal(expected, np.flatnonzero(cap["tool"] & cap["usable"]))
    indices = np.load(keep)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, expected)
    written = read_plyfile_columns(out)
    assert set(written) == {k for k in cap if k not in ("tool", "usable")}
    for name, values in written.items():  # every stored value, bit for bit
        np.testing.assert_array_equal(values.view(np.uint32), cap[name][expected].view(np.uint32),
                                      err_msg=name)
    report = json.loads(stdout)
    assert report == {
        "capture": str(tmp_path / "capture.ply"), "format": "inria_ply", "rows": 1000,
        "usable": 996, "kept": expected.size, "removed": 1000 - expected.size,
        "stages": [{"name": "unusable", "removed": 4, "params": {}},
                   {"name": "crop", "removed": 996 - expected.size,
                    "params": {"volumes": 1, "keep_volumes": 1, "remove_volumes": 0}}],
        "out": str(out), "keep_out": str(keep), "preview": None}


def test_ascii_capture_and_colour_key(tmp_path: Path, capsys) -> None:
    cap = make_capture(tmp_path / "capture.ply", text=True, degree=0)
    out = tmp_path / "tool.ply"
    code, stdout, err = run([str(tmp_path / "capture.ply"), "--out", str(out), "--no-auto",
                             "--colour-key", "#e61a1a", "--colour-tolerance", "10"], capsys)
    assert code == 0 and stdout == ""
    assert "colour: removed" in err and "kept" in err  # progress on stderr
    written = read_plyfile_columns(out)
    expected = np.flatnonzero(cap["tool"] & cap["usable"])
    np.testing.assert_array_equal(written["x"], cap["x"][expected])
    np.testing.assert_array_equal(written["opacity"], cap["opacity"][expected])
    np.testing.assert_array_equal(written["scale_2"], cap["scale_2"][expected])


def test_colour_remove_mode_and_several_keys(tmp_path: Path, capsys) -> None:
    cap = make_capture(tmp_path / "capture.ply")
    keep = tmp_path / "keep.npy"
    code, stdout, _ = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                           "--keep-out", str(keep), "--no-auto", "--json", "--colour-key",
                           "0.1,0.2,0.9", "--colour-key", "0,1,0", "--colour-mode", "remove"],
                          capsys)
    assert code == 0
    np.testing.assert_array_equal(np.load(keep), np.flatnonzero(cap["tool"] & cap["usable"]))
    stage = json.loads(stdout)["stages"][1]
    assert stage["name"] == "colour" and stage["params"]["mode"] == "remove"
    assert stage["params"]["colours"] == [[0.1, 0.2, 0.9], [0.0, 1.0, 0.0]]


def test_stages_run_in_order_and_auto_sees_what_is_left(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    cap = make_capture(tmp_path / "capture.ply")
    seen: dict[str, np.ndarray] = {}

    def fake_auto(means, scales, opacities, candidates):
        seen["candidates"] = candidates.copy()
        keep = candidates.copy()
        drop = np.flatnonzero(candidates)[::2]
        keep[drop] = False
        params = {"step": np.int64(2), "radius": np.float32(0.5), "axes": np.eye(2)}
        return AutoResult(keep, (StageReport("auto.fake", drop.size, params),))

    monkeypatch.setattr(pipeline, "auto_extract", fake_auto)
    keep_path = tmp_path / "keep.npy"
    crop = sphere_crop(tmp_path / "crop.json", radius=30.0)  # everything but the far rows
    code, stdout, _ = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                           "--keep-out", str(keep_path), "--crop", str(crop), "--colour-key",
                           "0.9,0.1,0.1", "--json"], capsys)
    assert code == 0
    after_colour = cap["tool"] & cap["usable"]
    np.testing.assert_array_equal(seen["candidates"], after_colour)
    np.testing.assert_array_equal(np.load(keep_path), np.flatnonzero(after_colour)[1::2])
    report = json.loads(stdout)
    assert [s["name"] for s in report["stages"]] == ["unusable", "crop", "colour", "auto.fake"]
    assert report["stages"][3] == {"name": "auto.fake", "removed": (after_colour.sum() + 1) // 2,
                                   "params": {"step": 2, "radius": 0.5,
                                              "axes": [[1.0, 0.0], [0.0, 1.0]]}}
    assert report["kept"] == after_colour.sum() // 2


def test_other_formats_are_written_as_inria(tmp_path: Path, capsys) -> None:
    rows = np.zeros(6, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4),
                              ("rot", "u1", 4)])
    rows["pos"] = [[0, 0, 0], [0.1, 0, 0], [0, 0.2, 0], [50, 0, 0], [0, 0, 0.3], [0, 50, 0]]
    rows["scale"] = [[0.01, 0.02, 0.03]] * 6
    rows["rgba"] = [200, 100, 50, 180]
    rows["rot"] = [255, 128, 128, 128]
    capture = tmp_path / "c.splat"
    capture.write_bytes(rows.tobytes())
    crop = sphere_crop(tmp_path / "crop.json", centre=np.zeros(3), radius=1.0)
    out = tmp_path / "t.ply"
    code, stdout, _ = run([str(capture), "--out", str(out), "--crop", str(crop), "--no-auto",
                           "--json"], capsys)
    assert code == 0 and json.loads(stdout)["format"] == "splat"
    src, got = read_splat_file(capture), read_splat_file(out)
    kept = [0, 1, 2, 4]
    np.testing.assert_array_equal(got.means, src.means[kept])
    np.testing.assert_array_equal(got.quats, src.quats[kept])
    np.testing.assert_array_equal(got.sh, src.sh[kept])
    np.testing.assert_allclose(got.scales, src.scales[kept], rtol=2.0**-24 * 6)
    np.testing.assert_allclose(got.opacities, src.opacities[kept], rtol=2.0**-22)


def _assert_refused(code: int, err: str, *words: str) -> None:
    """Exit 2 with one error line (after any progress lines) holding ``words``."""
    assert code == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("gs-backend: ")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    for w in words:
        assert w in errors[0], errors[0]


@pytest.mark.parametrize(("args", "words"), [
    (["--crop", "{crop_far}"], ["crop.json", "volumes[0]", "holds none", "x "]),
    (["--crop", "{crop_cancel}"], ["crop.json", "crop keeps nothing"]),
    (["--colour-key", "0,1,0", "--colour-tolerance", "5"], ["--colour-key", "keeps nothing"]),
    (["--colour-key", "2,0,0"], ["--colour-key", "R,G,B"]),
    (["--colour-tolerance", "5"], ["--colour-tolerance", "needs"]),
    (["--crop", "{bad_crop}"], ["crop.json", "volumes[0].shape", "cone"]),
    (["--crop", "{missing}"], ["nothing.json"]),
])
def test_refusals_write_nothing(tmp_path: Path, capsys, args: list[str],
                                words: list[str]) -> None:
    make_capture(tmp_path / "capture.ply")
    crop = tmp_path / "crop.json"
    if "{crop_far}" in args:
        sphere_crop(crop, centre=TOOL_CENTRE + 1000)
    elif "{crop_cancel}" in args:
        m = np.diag([1.0, 1.0, 1.0, 1.0])
        m[:3, 3] = TOOL_CENTRE
        save_crop(crop, crop_document([("sphere", "keep", m), ("box", "remove", m)]))
    else:
        crop.write_text(json.dumps({"format": "gs-crop", "version": 1, "volumes": [
            {"shape": "cone", "mode": "keep", "capture_from_volume": np.eye(4).tolist()}]}))
    args = [str(tmp_path / "nothing.json") if a == "{missing}" else
            str(crop) if a.startswith("{") else a for a in args]
    code, _, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                        "--keep-out", str(tmp_path / "k.npy"), "--preview",
                        str(tmp_path / "s.png"), "--no-auto", *args], capsys)
    _assert_refused(code, err, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.ply", "crop.json"]


def test_no_usable_row_is_refused(tmp_path: Path, capsys) -> None:
    cols = random_inria_columns(4, 0, 1)
    cols["x"][:] = np.nan
    write_plyfile(tmp_path / "capture.ply", cols)
    code, _, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply")],
                       capsys)
    assert code == 2 and "no usable Gaussian" in err and "capture.ply" in err
    assert not (tmp_path / "t.ply").exists()


def test_outputs_never_overwrite_the_capture(tmp_path: Path, capsys) -> None:
    make_capture(tmp_path / "capture.ply")
    before = (tmp_path / "capture.ply").read_bytes()
    code, _, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "capture.ply")],
                       capsys)
    assert code == 2 and "--out" in err and "CAPTURE" in err
    code, _, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "a.ply"),
                        "--keep-out", str(tmp_path / "a.ply")], capsys)
    assert code == 2 and "--keep-out" in err
    code, _, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path)], capsys)
    assert code == 2 and "folder" in err
    assert (tmp_path / "capture.ply").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.ply"]


@pytest.fixture
def restore_sigint():
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def test_ctrl_c_exits_130_and_writes_nothing(tmp_path: Path, capsys, monkeypatch,
                                             restore_sigint) -> None:
    make_capture(tmp_path / "capture.ply")
    real = pipeline.auto_extract

    def interrupted_auto(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)  # as if the user pressed Ctrl-C during it
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "auto_extract", interrupted_auto)
    code, _, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                        "--keep-out", str(tmp_path / "k.npy")], capsys)
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.ply"]


def test_extract_without_preview_does_not_load_torch() -> None:
    code = ("import sys, gs_backend.cli, gs_backend.extract.command; "
            "print(sorted({'torch', 'cv2'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_console_script_end_to_end(tmp_path: Path) -> None:
    cap = make_capture(tmp_path / "capture.ply")
    crop = sphere_crop(tmp_path / "crop.json")
    proc = subprocess.run([sys.executable, "-m", "gs_backend", "extract",
                           str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                           "--crop", str(crop), "--no-auto", "--json"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kept"] == int((cap["tool"] & cap["usable"]).sum())


def test_an_automatic_method_that_keeps_nothing_is_refused(tmp_path: Path, capsys,
                                                           monkeypatch) -> None:
    make_capture(tmp_path / "capture.ply")
    monkeypatch.setattr(pipeline, "auto_extract", lambda means, scales, opacities, candidates:
                        AutoResult(np.zeros_like(candidates), ()))
    code, stdout, err = run([str(tmp_path / "capture.ply"), "--out", str(tmp_path / "t.ply"),
                             "--json"], capsys)
    _assert_refused(code, err, "capture.ply", "automatic method kept nothing", "--no-auto")
    assert stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["capture.ply"]
