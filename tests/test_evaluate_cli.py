"""``gs-backend evaluate`` end to end: pairing, the report files, overlays, masks, LPIPS
plumbing and every refusal (exit 2, one line, nothing written).

Figures are checked against scikit-image on the images as read here, and the summary
is recomputed from metrics.csv with numpy.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gs_backend.cli import main
from gs_backend.evaluate import overlay
from gs_backend.evaluate.lpips import BACKBONES, Lpips
from tests.test_evaluate_lpips import random_weights

W, H = 64, 48


def scene(seed: int, w: int = W, h: int = H) -> np.ndarray:
    """A smooth random uint8 RGB image."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (7, 7), 2)


def degrade(image: np.ndarray, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)


def write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def read01(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) / 255.0


def sk_ssim(x, y, **kw):
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1, channel_axis=-1,
                                 **kw)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def strict_json(path: Path):
    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture
def folders(tmp_path):
    """A rendered dataset folder (images/train, images/val) of 7 frames with growing
    noise in the real ones; a plain real folder (PNG and JPEG, one unpaired image and a
    text file)."""
    rendered, real = tmp_path / "render", tmp_path / "real"
    for i in range(7):
        split = "val" if i % 3 == 0 else "train"
        image = scene(i)
        write(rendered / "images" / split / f"frame_{i:04d}.png", image)
        suffix = ".jpg" if i == 2 else ".png"
        write(real / f"frame_{i:04d}{suffix}", degrade(image, 2 + 3 * i, 100 + i))
    write(real / "frame_0099.png", scene(99))
    (real / "notes.txt").write_text("not an image")
    (rendered / "manifest.json").write_text("{}")
    return rendered, real


def evaluate(rendered: Path, real: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "--rendered", str(rendered), "--real", str(real),
                 "--out", str(out), *extra])


def test_report_files(folders, tmp_path, capsys):
    rendered, real = folders
    out = tmp_path / "report"
    assert evaluate(rendered, real, out) == 0
    header, rows = read_csv(out / "metrics.csv")
    assert header == ["frame", "psnr", "ssim", "lpips"]
    assert [r["frame"] for r in rows] == [f"frame_{i:04d}" for i in range(7)]
    for r in rows:
        i = int(r["frame"][-4:])
        split = "val" if i % 3 == 0 else "train"
        x = read01(rendered / "images" / split / f"{r['frame']}.png")
        y = read01(next(real.glob(f"{r['frame']}.*")))
        assert float(r["psnr"]) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=1),
                                                 abs=1e-9)
        assert float(r["ssim"]) == pytest.approx(sk_ssim(x, y), abs=1e-12)
        assert r["lpips"] == ""
    summary = strict_json(out / "summary.json")
    assert summary["frames"] == 7
    for key in ("psnr", "ssim"):
        values = np.array([float(r[key]) for r in rows])
        assert summary[key] == pytest.approx({"mean": values.mean(), "std": values.std(),
                                              "min": values.min(), "max": values.max()},
                                             rel=1e-12)
    assert summary["lpips"] is None
    notes = " ".join(summary["notes"])
    assert "--lpips-weights" in notes and "export_lpips_weights.py" in notes
    assert "1 real image(s) without a rendered frame" in notes and "frame_0099" in notes
    # ceil(7/2) and floor(7/2) capped at 3: the 3 best and the 3 worst by PSNR
    ranked = [r["frame"] for r in sorted(rows, key=lambda r: -float(r["psnr"]))]
    expected = [f"overlays/best_{k + 1}_{f}.png" for k, f in enumerate(ranked[:3])] + \
               [f"overlays/worst_{k + 1}_{f}.png" for k, f in enumerate(ranked[::-1][:3])]
    assert summary["overlays"] == expected
    assert sorted(p.name for p in (out / "overlays").iterdir()) == \
        sorted(Path(p).name for p in expected)
    report = (out / "report.md").read_text()
    psnr = summary["psnr"]
    assert (f"| PSNR (dB) ↑ | {psnr['mean']:.2f} ± {psnr['std']:.2f} | {psnr['min']:.2f} | "
            f"{psnr['max']:.2f} |") in report
    assert "| LPIPS ↓ | not computed" in report
    for path in expected:
        assert f"]({path})" in report
    assert "7 pairs" in capsys.readouterr().err


def test_overlay_layout(folders, tmp_path):
    """Title strip, then rendered | real | heat map, each panel the image enlarged by an
    integer factor (64 px wide -> 256), and the colour bar beside the heat map."""
    rendered, real = folders
    out = tmp_path / "report"
    assert evaluate(rendered, real, out) == 0
    best = strict_json(out / "summary.json")["overlays"][0]
    frame = best.split("_", 2)[2][:-4]
    sheet = cv2.imread(str(out / best))
    factor = 4
    pw, ph = W * factor, H * factor
    expected_w = 2 * overlay.MARGIN + 3 * pw + 3 * overlay.PANEL_GAP + overlay.BAR_WIDTH \
        + overlay.BAR_LABEL_WIDTH
    assert sheet.shape == (overlay.TITLE_HEIGHT + overlay.LABEL_HEIGHT + ph + overlay.MARGIN,
                           expected_w, 3)
    top = overlay.TITLE_HEIGHT + overlay.LABEL_HEIGHT
    x = cv2.imread(str(next(rendered.rglob(f"{frame}.png"))))
    y = cv2.imread(str(next(real.glob(f"{frame}.*"))))

    def panel(i):
        left = overlay.MARGIN + i * (pw + overlay.PANEL_GAP)
        return sheet[top:top + ph, left:left + pw]

    enlarge = lambda a: np.repeat(np.repeat(a, factor, axis=0), factor, axis=1)  # noqa: E731
    np.testing.assert_array_equal(panel(0), enlarge(x))
    np.testing.assert_array_equal(panel(1), enlarge(y))
    # heat map: brighter where the images differ more
    diff = enlarge(np.abs(x.astype(int) - y.astype(int)).mean(axis=2))
    heat = panel(2).astype(int).sum(axis=2)
    assert np.corrcoef(diff.ravel(), heat.ravel())[0, 1] > 0.9
    bar_left = overlay.MARGIN + 3 * pw + 3 * overlay.PANEL_GAP
    bar = sheet[top:top + ph, bar_left:bar_left + overlay.BAR_WIDTH].astype(int).sum(axis=2)
    assert bar[0].min() > bar[-1].max()  # the top of the bar is the bright end
    assert sheet[:overlay.TITLE_HEIGHT].max() > 200  # the title is drawn


def test_identical_pair_and_rerun_removes_stale_overlays(tmp_path):
    rendered, real = tmp_path / "r", tmp_path / "q"
    for i in range(4):
        write(rendered / f"f{i}.png", scene(i))
        write(real / f"f{i}.png", scene(i) if i == 0 else degrade(scene(i), 5 * i, i))
    out = tmp_path / "report"
    stale = write(out / "overlays" / "worst_3_old.png", scene(0))
    mine = write(out / "overlays" / "my_own.png", scene(0))
    assert evaluate(rendered, real, out) == 0
    _, rows = read_csv(out / "metrics.csv")
    assert rows[0]["psnr"] == "inf" and float(rows[0]["ssim"]) == 1.0
    summary = strict_json(out / "summary.json")
    finite = [float(r["psnr"]) for r in rows[1:]]
    assert summary["psnr"]["max"] == pytest.approx(max(finite))
    assert summary["psnr"]["mean"] == pytest.approx(np.mean(finite))
    assert summary["ssim"]["max"] == 1.0
    assert any("1 pair(s) identical" in n and "f0" in n for n in summary["notes"])
    assert not stale.exists() and mine.exists()
    assert (out / "overlays" / "best_1_f0.png").exists()
    assert len(summary["overlays"]) == 4  # 2 best, 2 worst of 4


def test_lpips_with_a_local_weights_file(folders, tmp_path):
    rendered, real = folders
    weights = random_weights(BACKBONES["alex"], seed=3)
    path = tmp_path / "lpips_alex.pth"
    torch.save(weights, path)
    out = tmp_path / "report"
    assert evaluate(rendered, real, out, "--lpips-weights", str(path), "--device", "cpu") == 0
    _, rows = read_csv(out / "metrics.csv")
    net = Lpips(BACKBONES["alex"], weights, source=path)
    for r in rows:
        x = read01(next(rendered.rglob(f"{r['frame']}.png")))
        y = read01(next(real.glob(f"{r['frame']}.*")))
        assert float(r["lpips"]) == pytest.approx(net.distance(x, y), rel=1e-6)
    summary = strict_json(out / "summary.json")
    values = np.array([float(r["lpips"]) for r in rows])
    assert summary["lpips"] == pytest.approx({"mean": values.mean(), "std": values.std(),
                                              "min": values.min(), "max": values.max()})
    assert any("alex backbone" in n for n in summary["notes"])
    assert "| LPIPS ↓ | " in (out / "report.md").read_text()


def write_mask(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), mask.astype(np.uint16))


def test_masks_give_instrument_only_figures(folders, tmp_path):
    rendered, real = folders
    dataset = tmp_path / "render"  # its masks/ next to images/
    for i in range(7):
        split = "val" if i % 3 == 0 else "train"
        m = np.zeros((H, W), np.uint16)
        if i == 5:  # frame 5: the instrument only at the border
            m[:3, 10:20] = 1
        elif i != 4:  # frame 4: no instrument visible
            m[10:40, 5 + i:30 + i] = 1
            m[20:30, 40:60] = 2
        write_mask(dataset / "masks" / split / f"frame_{i:04d}.png", m)
    out = tmp_path / "report"
    assert evaluate(rendered, real, out, "--masks", str(dataset)) == 0
    header, rows = read_csv(out / "metrics.csv")
    assert header == ["frame", "psnr", "ssim", "lpips", "mask_pixels", "psnr_masked",
                      "ssim_masked"]
    for r in rows:
        i = int(r["frame"][-4:])
        split = "val" if i % 3 == 0 else "train"
        mask = cv2.imread(str(dataset / "masks" / split / f"{r['frame']}.png"),
                          cv2.IMREAD_UNCHANGED) > 0
        assert int(r["mask_pixels"]) == mask.sum()
        if i == 4:
            assert r["psnr_masked"] == "" and r["ssim_masked"] == ""
            continue
        x = read01(next(rendered.rglob(f"{r['frame']}.png")))
        y = read01(next(real.glob(f"{r['frame']}.*")))
        assert float(r["psnr_masked"]) == pytest.approx(
            peak_signal_noise_ratio(x[mask], y[mask], data_range=1), abs=1e-9)
        if i == 5:
            assert r["ssim_masked"] == ""
            continue
        _, full = sk_ssim(x, y, full=True)
        centres = np.zeros_like(mask)
        centres[5:-5, 5:-5] = mask[5:-5, 5:-5]
        assert float(r["ssim_masked"]) == pytest.approx(full[centres].mean(), abs=1e-12)
    summary = strict_json(out / "summary.json")
    values = np.array([float(r["ssim_masked"]) for r in rows if r["ssim_masked"]])
    assert summary["ssim_masked"]["mean"] == pytest.approx(values.mean())
    assert len(values) == 5
    psnr_values = np.array([float(r["psnr_masked"]) for r in rows if r["psnr_masked"]])
    assert len(psnr_values) == 6
    assert summary["psnr_masked"]["std"] == pytest.approx(psnr_values.std())
    assert any("1 frame(s) without instrument pixels" in n and "frame_0004" in n
               for n in summary["notes"])
    assert any("only within 5 pixels of the border" in n and "frame_0005" in n
               for n in summary["notes"])
    assert "| SSIM, instrument pixels ↑ |" in (out / "report.md").read_text()


# --- refusals ----------------------------------------------------------------------------

def refused(capsys, rendered, real, out, *extra) -> str:
    """Run; expect exit 2, one line on stderr, no report file."""
    assert evaluate(rendered, real, out, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gs-backend: error: "), err
    assert not (out / "metrics.csv").exists() and not (out / "summary.json").exists()
    return err


def pair_folders(tmp_path, n=2, size=(W, H)):
    rendered, real = tmp_path / "r", tmp_path / "q"
    for i in range(n):
        write(rendered / f"f{i}.png", scene(i, *size))
        write(real / f"f{i}.png", scene(i + 10, *size))
    return rendered, real


def test_refuses_a_rendered_frame_without_real_partner(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path, 3)
    (real / "f1.png").unlink()
    (real / "f2.png").unlink()
    err = refused(capsys, rendered, real, tmp_path / "out")
    assert "f1.png: --real: no real image named f1" in err and "(and 1 more)" in err


def test_refuses_mismatched_sizes(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path)
    write(real / "f1.png", scene(1, W - 4, H))
    err = refused(capsys, rendered, real, tmp_path / "out")
    assert f"{rendered / 'f1.png'}: is {W}x{H} but its real partner {real / 'f1.png'} is " \
           f"{W - 4}x{H}" in err


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n broken"])
def test_refuses_an_unreadable_image(tmp_path, capsys, content):
    rendered, real = pair_folders(tmp_path)
    (real / "f0.png").write_bytes(content)
    err = refused(capsys, rendered, real, tmp_path / "out")
    assert f"{real / 'f0.png'}: cannot be decoded" in err


def test_refuses_empty_and_missing_folders(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path)
    empty = tmp_path / "empty"
    (empty / "images" / "train").mkdir(parents=True)
    err = refused(capsys, empty, real, tmp_path / "out")
    assert "--rendered: no PNG/JPG/JPEG images found" in err and "images" in err
    err = refused(capsys, rendered, tmp_path / "absent", tmp_path / "out")
    assert "absent: --real: does not exist" in err


def test_refuses_a_report_path_that_is_a_file(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path)
    out = tmp_path / "report.txt"
    out.write_text("mine")
    assert evaluate(rendered, real, out) == 2
    assert "--out: is a file" in capsys.readouterr().err
    assert out.read_text() == "mine"


def test_refuses_two_images_of_one_frame(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path)
    cv2.imwrite(str(real / "f0.jpg"), scene(0))
    err = refused(capsys, rendered, real, tmp_path / "out")
    assert "two images of frame 'f0'" in err


def test_refuses_grayscale_and_tiny_images(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path)
    cv2.imwrite(str(real / "f0.png"), np.zeros((H, W), np.uint8))
    err = refused(capsys, rendered, real, tmp_path / "out")
    assert "f0.png: is not a colour image" in err
    tiny = tmp_path / "tiny"
    rendered, real = pair_folders(tiny, size=(9, 7))
    err = refused(capsys, rendered, real, tiny / "out")
    assert "is 9x7: SSIM's 11x11 window" in err


def test_refuses_bad_masks(folders, tmp_path, capsys):
    rendered, real = folders
    masks = tmp_path / "masks"
    for i in range(7):
        write_mask(masks / f"frame_{i:04d}.png", np.zeros((H, W)))
    (masks / "frame_0003.png").unlink()
    err = refused(capsys, rendered, real, tmp_path / "out", "--masks", str(masks))
    assert "--masks: no mask frame_0003.png" in err
    write_mask(masks / "frame_0003.png", np.zeros((H + 1, W)))
    err = refused(capsys, rendered, real, tmp_path / "out", "--masks", str(masks))
    assert f"frame_0003.png: is {W}x{H + 1} but its frame" in err


def test_refuses_bad_lpips_weights(tmp_path, capsys):
    rendered, real = pair_folders(tmp_path)
    weights = random_weights(BACKBONES["alex"])
    del weights["lin2.model.1.weight"]
    torch.save(weights, tmp_path / "w.pth")
    err = refused(capsys, rendered, real, tmp_path / "out", "--lpips-weights",
                  str(tmp_path / "w.pth"))
    assert "w.pth: lin2.model.1.weight: missing" in err
    torch.save(random_weights(BACKBONES["alex"]), tmp_path / "w.pth")
    small = tmp_path / "small"
    rendered, real = pair_folders(small, size=(20, 20))
    err = refused(capsys, rendered, real, small / "out", "--lpips-weights",
                  str(tmp_path / "w.pth"))
    assert "is 20x20: the LPIPS network needs at least 31 pixels" in err


def test_a_refusal_is_one_line_without_traceback_in_a_real_process(tmp_path):
    rendered, real = pair_folders(tmp_path)
    write(real / "f1.png", scene(1, W, H + 2))
    result = subprocess.run([sys.executable, "-m", "gs_backend", "evaluate", "--rendered",
                             str(rendered), "--real", str(real), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
