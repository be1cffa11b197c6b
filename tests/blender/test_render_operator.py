"""``gsds.render_dataset`` / ``gsds.cancel_render`` driven through ``poll_render_job``.

Timers never fire under the bpy module, so the tests call the poll function the modal
operator's timer calls, against ``fake_backend.py`` (a script that prints the backend's
jsonl events); one end-to-end test runs the real backend from ``.venv``.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from paths import BACKEND_PYTHON
from scene_factory import build_small_scene

from blender_addon.blender import operators_render
from blender_addon.blender.operators_render import poll_render_job, start_render_job
from blender_addon.core.backend_process import BackendError, BackendJob, backend_argv
from blender_addon.core.scenario_builder import ScenarioExportError

FAKE = Path(__file__).with_name("fake_backend.py")
STATUSES: list[str] = []  # every status line run_to_end saw


def fake(mode: str = "ok", delay: float = 0.0) -> str:
    return shlex.join([sys.executable, str(FAKE), "--mode", mode, "--delay", str(delay)])


@pytest.fixture
def scene(addon, tmp_path):
    scene = build_small_scene(tmp_path, frame_end=4, class_name="needle_driver",
                              gaussians=200, end_location=(0.3, 0.1, 2.0))
    scene.gsds.output_dir = str(tmp_path / "out")
    yield scene
    job = operators_render.active_job()
    if job is not None:  # a failed test must not leave a child running
        job.process.cancel(interrupt_grace=1.0)
        poll_render_job(bpy.context, job)


def run_to_end(job, timeout: float = 60.0) -> tuple[set[str], list[float]]:
    """Poll like the modal timer does; returns the result and the progress seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = poll_render_job(bpy.context, job)
        seen.append(bpy.context.scene.gsds.progress)
        STATUSES.append(bpy.context.scene.gsds.status)
        if 'RUNNING_MODAL' not in result:
            return result, seen
        time.sleep(0.02)
    raise AssertionError("the render job did not finish in time")


def test_progress_summary_and_first_image(scene, tmp_path):
    job = start_render_job(bpy.context, backend_command=fake(delay=0.15), device="CPU")
    STATUSES.clear()
    assert scene.gsds.is_rendering
    assert operators_render.active_job() is job
    assert job.process.argv[-8:] == ["render", str(tmp_path / "out" / "scenario.json"),
                                     "--out", str(tmp_path / "out"), "--progress", "jsonl",
                                     "--device", "cpu"]
    result, seen = run_to_end(job)
    assert result == {'FINISHED'}
    assert seen == sorted(seen), "progress went backwards"
    assert any(0.0 < p < 1.0 for p in seen), f"no intermediate progress in {seen}"
    assert any(re.fullmatch(r"Rendering [123]/4 \(frame_000[123]\)", s) for s in STATUSES)
    settings = scene.gsds
    assert settings.progress == 1.0 and not settings.is_rendering
    assert re.fullmatch(r"4 frames, 4 labelled instances, [0-9.]+ s", settings.last_summary)
    assert settings.status.startswith("Done: 4 frames")
    assert job.image is not None and tuple(job.image.size) == (64, 48)
    assert Path(bpy.path.abspath(job.image.filepath)).name == "frame_0001.png"
    levels = [level for level, _ in job.reports]
    assert levels == ['WARNING', 'INFO']  # the backend's warning, then the summary
    assert "fake warning" in job.reports[0][1]
    assert operators_render.active_job() is None
    scenario = json.loads((tmp_path / "out" / "scenario.json").read_text())
    assert len(scenario["frames"]) == 4


def test_backend_error_becomes_a_readable_report(scene):
    job = start_render_job(bpy.context, backend_command=fake("fail"))
    result, _ = run_to_end(job)
    assert result == {'CANCELLED'}
    level, message = job.reports[-1]
    assert level == 'ERROR'
    assert message.startswith("Render failed: ") and "focal lengths must be positive" in message
    assert scene.gsds.status.startswith("Failed: ")
    assert not scene.gsds.is_rendering and scene.gsds.progress == 0.0
    assert job.process.state.returncode == 2


def test_crash_without_error_event_reports_stderr(scene):
    job = start_render_job(bpy.context, backend_command=fake("crash"))
    result, _ = run_to_end(job)
    assert result == {'CANCELLED'}
    assert job.reports[-1] == ('ERROR', "Render failed: RuntimeError: boom")


def test_cancel_stops_the_child_cleanly(scene):
    job = start_render_job(bpy.context, backend_command=fake("wait"))
    deadline = time.monotonic() + 30
    while job.process.state.done < 1:
        assert poll_render_job(bpy.context, job) == {'RUNNING_MODAL'}
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert 0.0 < scene.gsds.progress < 1.0
    assert bpy.ops.gsds.cancel_render() == {'FINISHED'}
    result, _ = run_to_end(job, timeout=30)
    assert result == {'CANCELLED'}
    assert job.process.process.poll() == 130  # SIGINT: the backend's clean, resumable exit
    assert job.reports[-1][0] == 'WARNING' and "resume" in job.reports[-1][1]
    assert not scene.gsds.is_rendering and scene.gsds.progress == 0.0
    assert "Cancelled after 1 of 4 frames" in scene.gsds.status
    assert operators_render.active_job() is None
    assert not bpy.ops.gsds.cancel_render.poll()


def test_esc_in_the_modal_operator_stops_the_child_cleanly(scene):
    """The modal handler itself, fed the events Blender would send (no window here)."""
    job = start_render_job(bpy.context, backend_command=fake("wait"))
    operator = SimpleNamespace(_job=job, _timer=None, _remove_timer=lambda context: None)
    modal = operators_render.GSDS_OT_render_dataset.modal

    def send(event_type: str, value: str = 'NOTHING') -> set[str]:
        return modal(operator, bpy.context, SimpleNamespace(type=event_type, value=value))

    deadline = time.monotonic() + 30
    while job.process.state.done < 1:
        assert send('TIMER') == {'RUNNING_MODAL'}
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert send('MOUSEMOVE') == {'PASS_THROUGH'}  # Blender stays usable
    assert send('ESC', 'PRESS') == {'RUNNING_MODAL'}  # stopping takes a few timer ticks
    while (result := send('TIMER')) == {'RUNNING_MODAL'}:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert result == {'CANCELLED'}
    assert job.process.process.poll() == 130
    assert "Cancelled after 1 of 4 frames" in scene.gsds.status
    assert operators_render.active_job() is None


def test_a_backend_ignoring_ctrl_c_is_terminated(scene):
    job = start_render_job(bpy.context, backend_command=fake("stubborn"))
    job.process.interrupt_grace = 0.5
    while job.process.state.done < 1:
        poll_render_job(bpy.context, job)
        time.sleep(0.02)
    job.request_cancel()
    result, _ = run_to_end(job, timeout=30)
    assert result == {'CANCELLED'}
    assert job.process.state.returncode == -signal.SIGTERM
    assert job.process.state.interrupted


def test_operator_renders_blocking_without_a_window(scene, monkeypatch):
    monkeypatch.setenv(operators_render.BACKEND_ENV, fake())
    assert bpy.ops.gsds.render_dataset() == {'FINISHED'}
    assert scene.gsds.last_summary.startswith("4 frames, 4 labelled instances")
    assert operators_render.active_job() is None


def test_operator_reports_export_errors(scene, monkeypatch):
    monkeypatch.setenv(operators_render.BACKEND_ENV, fake())
    scene.camera = None
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    with pytest.raises(RuntimeError, match="Render not started: the scene has no camera"):
        bpy.ops.gsds.render_dataset()
    assert not scene.gsds.is_rendering


def test_a_used_folder_with_another_scenario_needs_overwrite(scene, tmp_path):
    result, _ = run_to_end(start_render_job(bpy.context, backend_command=fake()))
    assert result == {'FINISHED'}
    before = (tmp_path / "out" / "scenario.json").read_text()
    # The same scene again: allowed (the backend resumes).
    result, _ = run_to_end(start_render_job(bpy.context, backend_command=fake()))
    assert result == {'FINISHED'}
    bpy.data.objects["driver"].location.x += 0.5
    bpy.data.objects["driver"].animation_data_clear()
    with pytest.raises(ScenarioExportError, match="already holds a dataset of a different"):
        start_render_job(bpy.context, backend_command=fake())
    assert (tmp_path / "out" / "scenario.json").read_text() == before  # untouched
    job = start_render_job(bpy.context, backend_command=fake(), overwrite=True)
    assert run_to_end(job)[0] == {'FINISHED'}
    argv = json.loads((tmp_path / "out" / "fake_backend_argv.json").read_text())
    assert "--overwrite" in argv


def test_a_folder_without_finished_frames_is_not_refused(scene, tmp_path):
    """Same rule as the backend: bookkeeping of a run that never finished a frame (a
    crash right after claiming) is not a dataset to protect."""
    state = tmp_path / "out" / ".gs-render"
    state.mkdir(parents=True)
    (state / "scenario.sha256").write_text("0" * 64 + "\n")
    (tmp_path / "out" / "scenario.json").write_text("{}")  # another scenario's copy
    assert run_to_end(start_render_job(bpy.context, backend_command=fake()))[0] == {'FINISHED'}
    (tmp_path / "out" / "manifest.json").unlink()  # (written by the fake backend)
    (state / "frames").mkdir()
    (state / "frames" / "frame_0001.json").write_text("{}")  # a finished frame
    (tmp_path / "out" / "scenario.json").write_text("{}")
    with pytest.raises(ScenarioExportError, match="already holds a dataset of a different"):
        start_render_job(bpy.context, backend_command=fake())


def test_the_panels_overwrite_switch_reaches_the_backend(scene, tmp_path, monkeypatch):
    monkeypatch.setenv(operators_render.BACKEND_ENV, fake())
    assert bpy.ops.gsds.render_dataset() == {'FINISHED'}
    bpy.data.objects["driver"].location.x += 0.5
    bpy.data.objects["driver"].animation_data_clear()
    with pytest.raises(RuntimeError, match="tick Overwrite"):
        bpy.ops.gsds.render_dataset()
    scene.gsds.overwrite = True
    assert bpy.ops.gsds.render_dataset() == {'FINISHED'}
    argv = json.loads((tmp_path / "out" / "fake_backend_argv.json").read_text())
    assert "--overwrite" in argv


def test_one_render_at_a_time(scene):
    job = start_render_job(bpy.context, backend_command=fake("wait"))
    assert not bpy.ops.gsds.render_dataset.poll()
    with pytest.raises(ScenarioExportError, match="already running"):
        start_render_job(bpy.context, backend_command=fake())
    job.process.cancel(interrupt_grace=5.0)
    assert run_to_end(job)[0] == {'CANCELLED'}


def test_stale_rendering_state_is_reset(scene, tmp_path):
    """A .blend saved mid-render must not leave the panel stuck on "rendering"."""
    scene.gsds.is_rendering = True
    scene.gsds.status = "Rendering 3/10"
    path = tmp_path / "saved_mid_render.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    bpy.ops.wm.open_mainfile(filepath=str(path))
    assert not bpy.context.scene.gsds.is_rendering and bpy.context.scene.gsds.status == ""
    bpy.context.scene.gsds.is_rendering = True
    assert bpy.ops.gsds.cancel_render() == {'FINISHED'}
    assert not bpy.context.scene.gsds.is_rendering


@pytest.mark.filterwarnings("ignore:.*does not support blend relative:RuntimeWarning")
def test_unsaved_blend_with_relative_output_folder(scene):
    scene.gsds.output_dir = "//gs_dataset/"
    with pytest.raises(ScenarioExportError, match="not saved"):
        start_render_job(bpy.context, backend_command=fake())


def test_backend_command_forms(tmp_path):
    python = backend_argv(sys.executable)
    assert python == [sys.executable, "-m", "gs_backend"]
    exe = tmp_path / "gs-backend"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert backend_argv(str(exe)) == [str(exe)]
    line = backend_argv(f"{sys.executable} -m gs_backend --flag")
    assert line == [sys.executable, "-m", "gs_backend", "--flag"]
    with pytest.raises(BackendError, match=r"not found.*preferences"):
        backend_argv("no-such-gs-backend-here")


def test_unparsable_output_is_kept_as_log(tmp_path):
    script = tmp_path / "noisy.py"
    script.write_text("print('hello, not json')\nprint('{\"event\": \"start\", \"total\": 2, "
                      "\"skipped\": 1}')\n")
    job = BackendJob([sys.executable, str(script)])
    state = job.wait()
    assert state.succeeded and state.total == 2 and state.done == 1
    assert state.logs == [("info", "hello, not json")]


@pytest.mark.slow
def test_end_to_end_with_the_real_backend(scene, tmp_path):
    """Export, render with gs_backend on the CPU, and read the dataset it wrote."""
    if not BACKEND_PYTHON.is_file():
        pytest.skip("the backend venv (.venv) is missing")
    scene.frame_end = 3
    job = start_render_job(bpy.context, backend_command=str(BACKEND_PYTHON), device="CPU")
    assert job.process.argv[1:3] == ["-m", "gs_backend"]
    result, _ = run_to_end(job, timeout=300)
    stderr = "\n".join(job.process.stderr_tail)
    assert result == {'FINISHED'}, [*job.reports, ("stderr", stderr)]
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["frames_done"] == 3
    assert [i["object"] for i in manifest["instruments"]] == ["driver"]
    scenario = json.loads((out / "scenario.json").read_text())
    for record, frame in zip(manifest["frames"], scenario["frames"], strict=True):
        assert record["name"] == frame["name"]
        np.testing.assert_allclose(record["camera"]["K"], frame["camera"]["K"])
        assert (out / record["image"]).is_file() and (out / record["label"]).is_file()
    summary = scene.gsds.last_summary
    assert summary.startswith(f"3 frames, {manifest['labelled_instances']} labelled instances")
    assert manifest["labelled_instances"] >= 1  # the instrument is in view
    assert tuple(job.image.size) == (64, 48)
