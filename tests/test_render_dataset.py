"""End to end: `gs-backend render` on a tiny scenario, checked through the files it writes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from gs_backend.cli import INTERRUPTED_MESSAGE as INTERRUPTED
from gs_backend.cli import main
from gs_contract.protocol import ErrorEvent, decode_event
from tests.folder_lock import folder_locked
from tests.scenario_factory import modified, scenario_dict, write_scenario

ROOT = Path(__file__).resolve().parents[1]


def render(scenario: Path, out: Path, *extra: str) -> int:
    return main(["render", str(scenario), "--out", str(out), "--progress", "none", *extra])


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.dtype == np.uint16, path
    return mask


def tight_box(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    scenario = write_scenario(folder)
    out = folder / "out"
    assert render(scenario, out) == 0
    return scenario, out


def test_layout_and_manifest(rendered):
    _, out = rendered
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "gs-dataset-manifest" and manifest["complete"]
    assert manifest["frames_done"] == manifest["frames_total"] == 4
    assert [i["id"] for i in manifest["instruments"]] == [1, 2]
    splits = [f["split"] for f in manifest["frames"]]
    assert splits.count("val") == 1 and splits.count("train") == 3
    for f in manifest["frames"]:
        for key in ("image", "label", "mask"):
            assert (out / f[key]).is_file()
        assert f[key].startswith(f"masks/{f['split']}/")
        assert f["camera"]["width"] == 64 and len(f["camera"]["K"]) == 3
        assert set(f["poses"]) <= {"scene", "driver", "grasper"}
        image = cv2.imread(str(out / f["image"]))
        assert image.shape == (48, 64, 3)
    text = (out / "data.yaml").read_text()
    assert "train: images/train" in text and "val: images/val" in text
    assert '0: "needle_driver"' in text and '1: "grasper"' in text
    assert (out / "scenario.json").is_file()


def test_instances_match_masks_labels_and_absence(rendered):
    _, out = rendered
    manifest = json.loads((out / "manifest.json").read_text())
    frames = {f["name"]: f for f in manifest["frames"]}
    # The grasper is far outside the view in frame 3 and absent from frame 4's poses.
    f3 = {i["object"]: i for i in frames["frame_0003"]["instances"]}
    assert f3["grasper"]["visible_pixels"] == 0 and not f3["grasper"]["labelled"]
    assert f3["grasper"]["box"] is None
    assert "grasper" not in {i["object"] for i in frames["frame_0004"]["instances"]}
    labelled_total = 0
    for f in manifest["frames"]:
        mask = read_mask(out / f["mask"])
        rows = [r.split() for r in (out / f["label"]).read_text().splitlines()]
        labelled = [i for i in f["instances"] if i["labelled"]]
        assert len(rows) == len(labelled)
        labelled_total += len(labelled)
        assert set(np.unique(mask)) - {0} == {i["id"] for i in f["instances"]
                                              if i["visible_pixels"]}
        for inst, row in zip(labelled, rows, strict=True):
            inst_mask = mask == inst["id"]
            assert inst["visible_pixels"] == int(inst_mask.sum()) >= 5
            assert inst["box"] == tight_box(inst_mask)
            x0, y0, x1, y1 = inst["box"]
            assert int(row[0]) == inst["class_index"]
            expected = [(x0 + x1) / 128, (y0 + y1) / 96, (x1 - x0) / 64, (y1 - y0) / 48]
            assert np.allclose([float(v) for v in row[1:]], expected, atol=1e-5)
    assert labelled_total == manifest["labelled_instances"] > 0


def test_coco_reproduces_masks(rendered):
    from pycocotools.coco import COCO

    _, out = rendered
    manifest = json.loads((out / "manifest.json").read_text())
    by_file = {Path(f["image"]).name: f for f in manifest["frames"]}
    seen = 0
    for split in ("train", "val"):
        coco = COCO(str(out / "annotations" / f"instances_{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
            "needle_driver", "grasper"]
        assert coco.getCatIds() == [1, 2]
        for image in coco.loadImgs(coco.getImgIds()):
            frame = by_file[image["file_name"]]
            assert frame["split"] == split
            mask = read_mask(out / frame["mask"])
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
                inst = next(i for i in frame["instances"]
                            if i["id"] == ann["attributes"]["instance_id"])
                assert np.array_equal(coco.annToMask(ann).astype(bool), mask == inst["id"])
                assert ann["category_id"] == inst["class_index"] + 1
                assert ann["area"] == inst["visible_pixels"]
                seen += 1
    assert seen == manifest["labelled_instances"]


def test_resume_keeps_finished_frames(tmp_path):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out, "--frames", "0:2") == 0
    partial = json.loads((out / "manifest.json").read_text())
    assert partial["frames_done"] == 2 and not partial["complete"]
    first = out / partial["frames"][0]["image"]
    stamp = first.stat().st_mtime_ns
    time.sleep(0.02)
    assert render(scenario, out) == 0
    full = json.loads((out / "manifest.json").read_text())
    assert full["complete"] and first.stat().st_mtime_ns == stamp


def test_frames_render_identically_when_split_into_shards(tmp_path):
    scenario = write_scenario(tmp_path)
    assert render(scenario, tmp_path / "whole") == 0
    assert render(scenario, tmp_path / "sharded", "--shard", "1/2") == 0
    assert render(scenario, tmp_path / "sharded", "--shard", "0/2") == 0
    whole = json.loads((tmp_path / "whole/manifest.json").read_text())
    sharded = json.loads((tmp_path / "sharded/manifest.json").read_text())
    assert sharded["complete"]
    assert sharded["frames"] == whole["frames"]
    for f in whole["frames"]:
        for key in ("image", "mask", "label"):
            a = (tmp_path / "whole" / f[key]).read_bytes()
            assert a == (tmp_path / "sharded" / f[key]).read_bytes()
    for split in ("train", "val"):
        name = f"annotations/instances_{split}.json"
        assert json.loads((tmp_path / "whole" / name).read_text()) == json.loads(
            (tmp_path / "sharded" / name).read_text())


def test_other_scenario_refused_unless_overwrite(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out, "--frames", "0:1") == 0
    (out / "my_notes.txt").write_text("keep me")
    other = tmp_path / "other.json"
    other.write_text(json.dumps(modified(scenario_dict(), "output.val_fraction", 0.5)))
    capsys.readouterr()
    assert render(other, out) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and str(out) in err and "Traceback" not in err
    assert render(other, out, "--overwrite") == 0
    assert (out / "my_notes.txt").read_text() == "keep me"
    assert json.loads((out / "manifest.json").read_text())["complete"]
    # The scenario kept next to the dataset is the one used now.
    assert json.loads((out / "scenario.json").read_text())["output"]["val_fraction"] == 0.5


def test_overwrite_with_the_same_scenario_resumes(tmp_path):
    """--overwrite only matters for a different scenario: shards of one scenario may
    each pass it without wiping each other's frames."""
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out, "--shard", "0/2", "--overwrite") == 0
    first = json.loads((out / "manifest.json").read_text())
    image = out / first["frames"][0]["image"]
    stamp = image.stat().st_mtime_ns
    assert render(scenario, out, "--shard", "1/2", "--overwrite") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and image.stat().st_mtime_ns == stamp


def test_bad_asset_leaves_the_folder_untouched(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    tool = tmp_path / "assets" / "tool.ply"
    good = tool.read_bytes()
    tool.write_bytes(good[: len(good) // 2])  # truncated
    out = tmp_path / "out"
    assert render(scenario, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tool) in err[0] and "assets.tool.ply" in err[0]
    assert not out.exists()
    # Fixed, and another scenario into the same folder: no --overwrite needed, since
    # the failed run never claimed it.
    tool.write_bytes(good)
    other = tmp_path / "other.json"
    other.write_text(json.dumps(modified(scenario_dict(), "output.val_fraction", 0.5)))
    assert render(other, out) == 0
    # A bad asset under --overwrite does not cost the dataset already there.
    before = (out / "manifest.json").read_text()
    tool.write_bytes(good[: len(good) // 2])
    assert render(scenario, out, "--overwrite") == 2
    assert (out / "manifest.json").read_text() == before


def test_a_claimed_folder_without_finished_frames_is_not_a_dataset(tmp_path):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    (out / ".gs-render").mkdir(parents=True)
    (out / ".gs-render" / "scenario.sha256").write_text("0" * 64 + "\n")  # a crashed run
    assert render(scenario, out) == 0
    assert json.loads((out / "manifest.json").read_text())["complete"]


def test_unusable_out_folder_exits_2(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert render(scenario, blocker / "sub") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0] and str(blocker / "sub") in err[0]


def test_only_old_temp_files_are_cleaned_up(tmp_path):
    """A hard-killed run's temp files go; a running shard's fresh ones stay."""
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out, "--frames", "0:1") == 0
    folder = out / "images" / "train"
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / ".frame_x.png.abc.tmp", folder / ".frame_y.png.def.tmp"
    for tmp in (stale, fresh):
        tmp.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    assert render(scenario, out) == 0
    assert not stale.exists() and fresh.exists()


def test_non_finite_counts_survive_a_resume_with_nothing_to_do(tmp_path):
    from gs_backend.io import load_gaussians
    from gs_backend.io.inria_ply import save_inria_ply

    scenario = write_scenario(tmp_path)
    tool = tmp_path / "assets" / "tool.ply"
    g = load_gaussians(tool).gaussians
    g.means[5, 0] = float("nan")
    save_inria_ply(tool, g)
    out = tmp_path / "out"
    assert render(scenario, out) == 0
    assert json.loads((out / "manifest.json").read_text())["non_finite_dropped"] == {"tool": 1}
    assert render(scenario, out) == 0  # everything done: no asset is loaded
    assert json.loads((out / "manifest.json").read_text())["non_finite_dropped"] == {"tool": 1}


def test_options_amodal_depth_segment_jpg(tmp_path):
    data = scenario_dict()
    data["output"].update({"amodal": True, "depth": True, "yolo_task": "segment",
                           "image_format": "jpg", "val_fraction": 0.0})
    scenario = write_scenario(tmp_path, data)
    out = tmp_path / "out"
    assert render(scenario, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert not list((out / "images/val").glob("*")) if (out / "images/val").exists() else True
    for f in manifest["frames"]:
        assert f["image"].endswith(".jpg") and f["split"] == "train"
        depth = np.load(out / f["depth"])
        assert depth.shape == (48, 64) and depth.dtype == np.float32
        mask = read_mask(out / f["mask"])
        covered = mask > 0
        # Everything in view is 0.85-1.0 units in front of the camera.
        assert np.all((depth[covered] > 0.8) & (depth[covered] < 1.05))
        for inst in f["instances"]:
            if inst["visible_pixels"] == 0:
                continue
            amodal = cv2.imread(str(out / f["amodal"][str(inst["id"])]), cv2.IMREAD_UNCHANGED)
            assert amodal.dtype == np.uint8
            assert np.all(amodal[mask == inst["id"]] == 255)  # visible is within amodal
            assert 0 < inst["visible_fraction"] <= 1
            assert inst["amodal_pixels"] == int((amodal > 0).sum())
        for row in (out / f["label"]).read_text().splitlines():
            values = row.split()
            assert len(values) >= 7 and len(values) % 2 == 1
            assert all(0.0 <= float(v) <= 1.0 for v in values[1:])


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "gs_backend", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300, **kw)


def test_jsonl_progress_events(tmp_path):
    scenario = write_scenario(tmp_path)
    proc = _cli("render", str(scenario), "--out", str(tmp_path / "out"), "--progress", "jsonl")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    frames = [e for e in events if e["event"] == "frame"]
    assert [e["done"] for e in frames] == [1, 2, 3, 4]
    assert all(e["total"] == 4 for e in frames)
    assert events[-1]["frames_done"] == 4
    # The done event carries exactly the documented fields (progress.py once named others).
    assert set(events[-1]) == {"event", "out", "frames_total", "frames_selected",
                               "frames_rendered", "frames_skipped", "frames_done",
                               "labelled_instances", "seconds"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["render", "{tmp}/missing.json", "--out", "{tmp}/o"], "missing.json: file not found"),
        (["render", "{scenario}", "--out", "{tmp}/o", "--shard", "3/2"], "--shard"),
        (["render", "{scenario}", "--out", "{tmp}/o", "--frames", "9:"], "--frames"),
        (["render", "{scenario}", "--out", "{tmp}/o", "--device", "cuda:0"], "--device"),
        (["render", "{broken}", "--out", "{tmp}/o"], "tool.ply"),
        (["info", "{tmp}/assets/nothing.ply"], "nothing.ply"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, words):
    import torch

    if "cuda:0" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA, so --device cuda:0 is valid here")
    scenario = write_scenario(tmp_path)
    broken_dir = tmp_path / "broken"
    broken = write_scenario(broken_dir)
    (broken_dir / "assets/tool.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\n")
    values = {"tmp": str(tmp_path), "scenario": str(scenario), "broken": str(broken)}
    proc = _cli(*[a.format(**values) for a in args])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert words in lines[0]


def start_jsonl_render(scenario: Path, out: Path, stderr: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "gs_backend", "render", str(scenario), "--out", str(out),
         "--progress", "jsonl"], stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True,
        env=env, cwd=ROOT)


def assert_resumable(scenario: Path, out: Path, frames: int) -> None:
    """No temp or truncated file is left, and the same command completes the dataset."""
    assert not [p for p in out.rglob("*.tmp")]
    for png in out.rglob("*.png"):
        assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED) is not None, png
    assert render(scenario, out) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["frames_done"] == frames


@pytest.mark.parametrize("after", ["start", "frame"])
def test_ctrl_c_exits_130_and_run_resumes(tmp_path, after):
    """SIGINT once the run reports ``start`` (before the first frame) or its first
    ``frame`` (writer threads busy): exit 130 and a resumable folder."""
    scenario = write_scenario(tmp_path, frames=24)
    out = tmp_path / "out"
    proc = start_jsonl_render(scenario, out, tmp_path / "stderr.txt")
    events = (json.loads(line)["event"] for line in proc.stdout)
    assert "start" in events  # the run has claimed the folder and is about to render:
    with folder_locked(out):  # from now on it cannot finish (it assembles under the lock)
        assert after in itertools.chain(["start"], events)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"gs-backend: {INTERRUPTED}"]
    assert decode_event(rest.splitlines()[-1]) == ErrorEvent(INTERRUPTED)
    assert_resumable(scenario, out, 24)


def test_ctrl_c_at_the_very_start(tmp_path):
    """SIGINT right after the process starts, whatever it is doing then (starting Python,
    importing torch, reading the scenario, loading assets): it stops, writes nothing."""
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    with folder_locked(out):
        proc = start_jsonl_render(scenario, out, tmp_path / "stderr.txt")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    # -2: killed before Python could install any handler (a shell reports 130 then too).
    assert proc.returncode in (130, -signal.SIGINT), (tmp_path / "stderr.txt").read_text()
    assert sorted(p.name for p in out.iterdir()) == []  # untouched (the lock went with us)
    assert_resumable(scenario, out, 4)


def test_ctrl_c_works_when_started_with_sigint_ignored(tmp_path):
    """A parent may start the backend with SIGINT ignored (``cmd &`` in a script, some
    launchers); Ctrl-C is still this protocol's way to stop a run."""
    scenario = write_scenario(tmp_path, frames=12)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gs_backend", "render", str(scenario), "--out", str(out),
         "--progress", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=env, cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    for line in proc.stdout:
        if json.loads(line)["event"] == "start":
            break
    with folder_locked(out):
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 130


def test_the_command_line_loads_torch_after_its_ctrl_c_handler():
    """Importing the CLI is light: its handler is in place before torch starts loading."""
    code = "import sys, gs_backend.cli; print(sorted({'torch', 'cv2'} & set(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.stdout.strip() == "[]", proc.stderr


def _raise_sigint() -> None:
    signal.raise_signal(signal.SIGINT)


def _interrupting(real, *, swallow: bool = False):
    """``real`` wrapped to receive one SIGINT, on its first call (two writer threads may
    call it at once: ``next`` on a counter is atomic); with ``swallow``, the
    KeyboardInterrupt is caught inside, as some libraries do."""
    calls = itertools.count()

    def wrapper(*args, **kwargs):
        if next(calls) == 0:
            if swallow:
                try:
                    _raise_sigint()
                except BaseException:  # the point: a library swallowing it
                    pass
            else:
                _raise_sigint()
        return real(*args, **kwargs)

    return wrapper


@pytest.fixture
def restore_sigint():
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


# (module, attribute, folder untouched?) for each stage of a run.
STAGES = {
    "before_loading": ("gs_backend.dataset.render_run", "prepare_assets", True),
    "while_loading": ("gs_backend.frame_renderer", "load_gaussians", True),
    "first_frame": ("gs_backend.frame_renderer.FrameRenderer", "render", False),
    "writer_thread": ("gs_backend.dataset.render_run", "write_frame", False),
    "assembly": ("gs_backend.dataset.assemble", "build_coco", False),
}


@pytest.mark.parametrize("swallow", [False, True], ids=["raised", "swallowed"])
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_ctrl_c_at_every_stage(tmp_path, monkeypatch, capsys, restore_sigint, stage,
                               swallow):
    """A real SIGINT delivered inside each stage, also when the code it lands in swallows
    the KeyboardInterrupt: exit 130, one line, the folder resumable (or untouched)."""
    import importlib

    module_name, attribute, untouched = STAGES[stage]
    if module_name.endswith("FrameRenderer"):
        owner = importlib.import_module(module_name.rpartition(".")[0]).FrameRenderer
    else:
        owner = importlib.import_module(module_name)
    monkeypatch.setattr(owner, attribute,
                        _interrupting(getattr(owner, attribute), swallow=swallow))
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out) == 130
    assert capsys.readouterr().err.strip().splitlines() == [f"gs-backend: {INTERRUPTED}"]
    if untouched:
        assert not out.exists()
    monkeypatch.undo()
    assert_resumable(scenario, out, 4)


@pytest.mark.parametrize("code", ["ENOSPC", "EACCES", "EROFS"])
def test_unwritable_output_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys, code):
    """Disk full, a read-only subfolder (what root, running CI, cannot make with chmod) or
    a read-only file system while writing a frame on resume: exit 2, one line naming the
    file; the frames and the dataset files already there are kept."""
    import errno

    from gs_backend.dataset import frame_outputs
    from gs_backend.dataset.split import assign_splits

    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out, "--frames", "0:2") == 0
    manifest_before = (out / "manifest.json").read_text()
    real = frame_outputs.write_file_atomic

    def full_disk(path, data):
        if Path(path).stem == "frame_0003" and "masks" in Path(path).parts:
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))
        return real(path, data)

    monkeypatch.setattr(frame_outputs, "write_file_atomic", full_disk)
    capsys.readouterr()
    assert render(scenario, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    split = assign_splits([f"frame_{i:04d}" for i in range(1, 5)], 0.2, 0)["frame_0003"]
    mask = out / "masks" / split / "frame_0003.png"
    assert err == [f"gs-backend: error: {mask}: cannot write: "
                   f"{os.strerror(getattr(errno, code))} "
                   "(finished frames are kept: fix this and run the same command to resume)"]
    assert (out / "manifest.json").read_text() == manifest_before
    monkeypatch.undo()
    assert_resumable(scenario, out, 4)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_subfolder_on_resume(tmp_path, capsys):
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(scenario, out, "--frames", "0:1") == 0
    labels = out / "labels" / "train"
    labels.chmod(0o555)
    try:
        capsys.readouterr()
        assert render(scenario, out) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(labels) in err[0] and "Traceback" not in err[0]
    finally:
        labels.chmod(0o755)
    assert_resumable(scenario, out, 4)


def test_image_writing_overlaps_rendering(tmp_path, monkeypatch):
    """Frames are written on the writer threads while the next frame renders."""
    import io
    import threading

    import torch

    from gs_backend.dataset import render_run
    from gs_backend.progress import JsonlProgress
    from gs_contract.scenario import load_scenario

    events: list[tuple[str, str, float, str]] = []  # (what, frame, time, thread name)
    real_write, real_render = render_run.write_frame, render_run.FrameRenderer.render

    def slow_write(job):
        events.append(("write", job.frame.name, time.perf_counter(),
                       threading.current_thread().name))
        time.sleep(0.3)  # PNG compression of a big frame
        return real_write(job)

    def timed_render(self, frame):
        events.append(("render", frame.name, time.perf_counter(),
                       threading.current_thread().name))
        return real_render(self, frame)

    monkeypatch.setattr(render_run, "write_frame", slow_write)
    monkeypatch.setattr(render_run.FrameRenderer, "render", timed_render)
    scenario = load_scenario(write_scenario(tmp_path))
    options = render_run.RenderOptions(out_dir=tmp_path / "out", device=torch.device("cpu"))
    summary = render_run.render_dataset(scenario, options, JsonlProgress(io.StringIO()))
    assert summary.frames_done == 4
    writes = {name: (t, thread) for what, name, t, thread in events if what == "write"}
    renders = {name: (t, thread) for what, name, t, thread in events if what == "render"}
    assert all(thread.startswith("gs-writer") for _, thread in writes.values())
    assert all(thread == "MainThread" for _, thread in renders.values())
    # Frame 2 starts rendering while frame 1 is still being written (0.3 s).
    assert renders["frame_0002"][0] < writes["frame_0001"][0] + 0.3


def test_shards_claiming_together_keep_each_others_frames(tmp_path):
    """Two shards with --overwrite start together on a folder of another scenario: both
    plan "replace" before loading assets, but only the first claim clears the folder;
    the second, planning again under the lock, resumes."""
    from gs_backend.dataset.output_folder import claim_output_folder
    from gs_contract.dataset import DatasetLayout, plan_output_folder
    from gs_contract.scenario import load_scenario

    old = tmp_path / "old.json"
    old.write_text(json.dumps(modified(scenario_dict(), "output.val_fraction", 0.5)))
    scenario = write_scenario(tmp_path)
    out = tmp_path / "out"
    assert render(old, out) == 0
    layout = DatasetLayout(out)
    fingerprint = load_scenario(scenario).fingerprint()
    assert plan_output_folder(layout, fingerprint, overwrite=True) == "replace"  # shard A
    assert plan_output_folder(layout, fingerprint, overwrite=True) == "replace"  # shard B
    assert claim_output_folder(layout, fingerprint, overwrite=True) == "replace"  # A first
    assert not layout.manifest.exists()  # the old dataset is gone
    record = layout.record("frame_0001")
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("{}")  # A finishes a frame
    assert claim_output_folder(layout, fingerprint, overwrite=True) == "resume"  # B
    assert record.exists()
