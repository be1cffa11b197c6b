"""The add-on's preview, live preview and Render Dataset against a REAL sidecar:
``.venv/bin/gs-backend serve`` as a child process (its listening line read, killed by
pid at teardown), and the add-on's own local sidecar (started from the Backend Command,
stopped, killed mid-render). The preview of a frame equals, pixel for pixel, the image
``gs-backend render`` writes for it. Skipped without the backend's ``.venv``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from paths import BACKEND_PYTHON, REPO
from scene_factory import build_small_scene

from blender_addon.blender import live_preview, render_job, sidecar_session
from blender_addon.blender.operators_export import export_scenario_file
from blender_addon.blender.render_job import poll_render_job, start_render_job
from blender_addon.core.sidecar_render import SidecarRenderJob
from gs_contract.scenario import blender_frame_name
from gs_contract.sidecar import parse_listening_line

GS_BACKEND = BACKEND_PYTHON.parent / "gs-backend"
pytestmark = pytest.mark.skipif(not GS_BACKEND.is_file(),
                                reason="needs the backend's venv (.venv/bin/gs-backend): "
                                       "run `make setup`")


class FakeClock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``gs-backend serve --port 0`` on the CPU: (url, token file)."""
    token_file = tmp_path_factory.mktemp("serve") / "token"
    process = subprocess.Popen(
        [str(GS_BACKEND), "serve", "--port", "0", "--device", "cpu",
         "--token-file", str(token_file)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        start_new_session=True)
    found: list = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            info = parse_listening_line(line)
            if info is not None:
                found.append(info)
                ready.set()
        ready.set()  # stdout closed: the process ended

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120) and found, "gs-backend serve printed no listening line"
        info = found[0]
        assert info.pid == process.pid and Path(info.token_file) == token_file
        yield info.url, info.token_file
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def state():
    return bpy.context.window_manager.gsds_sidecar


@pytest.fixture
def scene(addon, tmp_path):
    (tmp_path / "assets").mkdir()
    scene = build_small_scene(tmp_path / "assets", frame_end=4, class_name="needle_driver",
                              gaussians=200, end_location=(0.3, 0.1, 2.0))
    scene.gsds.output_dir = str(tmp_path / "out")
    yield scene
    job = render_job.active_job()
    if job is not None:
        job.process.cancel(interrupt_grace=5.0)
        poll_render_job(bpy.context, job)
    state().live_preview = False
    sidecar_session.stop()
    sidecar_session.forget_overrides()
    live_preview.reset()


def connect(served) -> None:
    url, token_file = served
    current = sidecar_session.connect(bpy.context, mode='REMOTE', url=url,
                                      token_file=token_file)
    assert current.wait_ready(60), current.message
    sidecar_session.sync()


def rgb(image) -> np.ndarray:
    """uint8 ``[H, W, 3]``, top row first."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return np.round(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)


def dataset_image(out: Path, frame: int) -> np.ndarray:
    manifest = json.loads((out / "manifest.json").read_text())
    entry = next(f for f in manifest["frames"] if f["name"] == blender_frame_name(frame))
    image = bpy.data.images.load(str(out / entry["image"]))
    try:
        return rgb(image)
    finally:
        bpy.data.images.remove(image)


def test_preview_equals_the_dataset_image_of_that_frame(scene, served, tmp_path):
    connect(served)
    scene.frame_set(3)
    assert bpy.ops.gsds.preview_frame() == {'FINISHED'}
    preview = rgb(bpy.data.images["GS Preview"])
    assert preview.shape == (48, 64, 3) and preview.std() > 0  # a real picture

    out = tmp_path / "cli"
    export_scenario_file(bpy.context, str(out / "scenario.json"), 'ALL')
    subprocess.run([str(GS_BACKEND), "render", str(out / "scenario.json"), "--out", str(out),
                    "--device", "cpu", "--progress", "none"], check=True, timeout=300,
                   capture_output=True)
    np.testing.assert_array_equal(preview, dataset_image(out, 3))
    # another frame gives another picture; labels and scale change the preview only
    assert not np.array_equal(preview, dataset_image(out, 1))
    state().preview_overlay = True
    bpy.ops.gsds.preview_frame()
    labelled = rgb(bpy.data.images["GS Preview"])
    assert labelled.shape == preview.shape and not np.array_equal(labelled, preview)
    state().preview_overlay, state().preview_scale = False, 0.5
    bpy.ops.gsds.preview_frame()
    assert tuple(bpy.data.images["GS Preview"].size) == (32, 24)


def test_live_preview_follows_frames_and_edits(scene, served):
    connect(served)
    live_preview.debouncer(FakeClock())
    clock = live_preview.debouncer().clock
    state().live_preview = True  # renders the current frame once settled
    clock.now += 0.3
    live_preview.tick()
    assert live_preview.wait_for_preview(bpy.context, 120).frame == 1

    scene.frame_set(4)
    clock.now += 0.3
    live_preview.tick()
    done = live_preview.wait_for_preview(bpy.context, 120)
    assert done.frame == 4 and done.render_s is not None
    before = rgb(bpy.data.images["GS Preview"])

    scene.camera.location.x += 0.3  # an edit (the camera is not animated): rendered again
    bpy.context.view_layer.update()
    clock.now += 0.3
    live_preview.tick()
    assert live_preview.wait_for_preview(bpy.context, 120).frame == 4
    assert not np.array_equal(rgb(bpy.data.images["GS Preview"]), before)
    live_preview.tick()
    assert not live_preview.debouncer().dirty  # showing it changed nothing


def run_to_end(job, timeout: float = 300.0, until=None) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = poll_render_job(bpy.context, job)
        if 'RUNNING_MODAL' not in result:
            return result
        if until is not None and until(job):
            return result
        time.sleep(0.02)
    raise AssertionError("the render did not finish in time")


def test_render_dataset_through_the_sidecar(scene, served, tmp_path):
    connect(served)
    job = start_render_job(bpy.context)
    assert isinstance(job.process, SidecarRenderJob)
    assert bpy.context.window_manager.gsds_session.status.startswith("Sent to the sidecar")
    progress = []
    deadline = time.monotonic() + 300
    while 'RUNNING_MODAL' in poll_render_job(bpy.context, job):
        progress.append(bpy.context.window_manager.gsds_session.progress)
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert job.process.state.succeeded, job.reports
    assert progress == sorted(progress)
    session = bpy.context.window_manager.gsds_session
    assert session.progress == 1.0 and not session.is_rendering
    assert session.last_summary.startswith("4 frames")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert sorted(f["name"] for f in manifest["frames"]) == \
        [blender_frame_name(n) for n in range(1, 5)]
    assert job.image is not None


def test_local_sidecar_started_and_stopped(scene):
    current = sidecar_session.connect(bpy.context, mode='LOCAL',
                                      backend_command=str(BACKEND_PYTHON))
    assert current.wait_ready(120), current.message
    sidecar_session.sync()
    assert state().phase == 'READY' and "on cpu" in state().message
    local = current.local
    pid, token_dir = local.info.pid, local.token_dir
    assert Path(local.info.token_file).parent == token_dir
    assert (Path(local.info.token_file).stat().st_mode & 0o777) == 0o600
    sidecar_session.stop()
    assert state().phase == 'OFF'
    assert local.state.finished
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not token_dir.exists()


def test_sidecar_killed_mid_render_is_reported_and_a_rerun_resumes(scene, tmp_path):
    scene.frame_end = 80  # long enough to be killed mid-way, also with a fast rasterizer
    scene.render.resolution_x, scene.render.resolution_y = 320, 240
    current = sidecar_session.connect(bpy.context, mode='LOCAL',
                                      backend_command=str(BACKEND_PYTHON))
    assert current.wait_ready(120), current.message
    job = start_render_job(bpy.context)
    result = run_to_end(job, until=lambda j: j.process.state.done >= 1)
    assert result == {'RUNNING_MODAL'}, "the render ended before the sidecar could be killed"
    os.killpg(current.local.process.pid, signal.SIGKILL)
    assert run_to_end(job) == {'CANCELLED'}
    level, message = job.reports[-1]
    assert level == 'ERROR' and "the sidecar stopped answering during the render" in message
    assert "render again to resume" in message
    live_preview.tick()
    assert state().phase == 'ERROR'
    assert "sidecar" in state().message  # one plain sentence, and Retry

    current = sidecar_session.connect(bpy.context)  # Retry: a fresh local sidecar
    assert current.wait_ready(120), current.message
    rerun = start_render_job(bpy.context)
    assert run_to_end(rerun) == {'FINISHED'}, rerun.reports
    assert rerun.process.state.skipped >= 1  # the finished frames were kept
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["frames"]) == 80
