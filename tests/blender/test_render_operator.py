"""``gsds.render_dataset`` / ``gsds.cancel_render`` driven through ``poll_render_job``.

Timers never fire under the bpy module, so the tests call the poll function the modal
operator's timer calls, against ``fake_backend.py`` (a script that prints the backend's
jsonl events); one end-to-end test runs the real backend from ``.venv``. Waits are on
events and conditions (with a generous deadline), never on the clock alone.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from paths import BACKEND_PYTHON, REPO
from scene_factory import build_small_scene

from blender_addon.blender import operators_render, render_job
from blender_addon.blender.render_job import poll_render_job, start_render_job
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
    job = render_job.active_job()
    if job is not None:  # a failed test must not leave a child running
        job.process.cancel(interrupt_grace=1.0)
        poll_render_job(bpy.context, job)


def session():
    """The render state of this Blender session (``WindowManager.gsds_session``)."""
    return bpy.context.window_manager.gsds_session


def run_to_end(job, timeout: float = 60.0) -> tuple[set[str], list[float]]:
    """Poll like the modal timer does; returns the result and the progress seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = poll_render_job(bpy.context, job)
        seen.append(session().progress)
        STATUSES.append(session().status)
        if 'RUNNING_MODAL' not in result:
            return result, seen
        time.sleep(0.02)
    raise AssertionError("the render job did not finish in time")


def test_progress_summary_and_first_image(scene, tmp_path):
    job = start_render_job(bpy.context, backend_command=fake(delay=0.15), device="CPU")
    STATUSES.clear()
    assert session().is_rendering
    assert render_job.active_job() is job
    assert job.process.argv[-8:] == ["render", str(tmp_path / "out" / "scenario.json"),
                                     "--out", str(tmp_path / "out"), "--progress", "jsonl",
                                     "--device", "cpu"]
    result, seen = run_to_end(job)
    assert result == {'FINISHED'}
    assert seen == sorted(seen), "progress went backwards"
    assert any(0.0 < p < 1.0 for p in seen), f"no intermediate progress in {seen}"
    assert any(re.fullmatch(r"Rendering [123]/4 \(frame_000[123]\)", s) for s in STATUSES)
    settings = session()
    assert settings.progress == 1.0 and not settings.is_rendering
    assert re.fullmatch(r"4 frames, 4 labelled instances, [0-9.]+ s", settings.last_summary)
    assert settings.status.startswith("Done: 4 frames")
    assert job.image is not None and tuple(job.image.size) == (64, 48)
    assert Path(bpy.path.abspath(job.image.filepath)).name == "frame_0001.png"
    levels = [level for level, _ in job.reports]
    assert levels == ['WARNING', 'INFO']  # the backend's warning, then the summary
    assert "fake warning" in job.reports[0][1]
    assert render_job.active_job() is None
    scenario = json.loads((tmp_path / "out" / "scenario.json").read_text())
    assert len(scenario["frames"]) == 4


def test_backend_error_becomes_a_readable_report(scene):
    job = start_render_job(bpy.context, backend_command=fake("fail"))
    result, _ = run_to_end(job)
    assert result == {'CANCELLED'}
    level, message = job.reports[-1]
    assert level == 'ERROR'
    assert message.startswith("Render failed: ") and "focal lengths must be positive" in message
    assert session().status.startswith("Failed: ")
    assert not session().is_rendering and session().progress == 0.0
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
    assert 0.0 < session().progress < 1.0
    assert bpy.ops.gsds.cancel_render() == {'FINISHED'}
    result, _ = run_to_end(job, timeout=30)
    assert result == {'CANCELLED'}
    assert job.process.process.poll() == 130  # SIGINT: the backend's clean, resumable exit
    assert job.reports[-1][0] == 'WARNING' and "resume" in job.reports[-1][1]
    assert not session().is_rendering and session().progress == 0.0
    assert "Cancelled after 1 of 4 frames" in session().status
    assert render_job.active_job() is None
    assert not bpy.ops.gsds.cancel_render.poll()


def test_esc_in_the_modal_operator_stops_the_child_cleanly(scene):
    """The modal handler itself, fed the events Blender would send (no window here)."""
    job = start_render_job(bpy.context, backend_command=fake("wait"))
    operator = SimpleNamespace(_job=job, _timer=None, _remove_timer=lambda context: None,
                               poll_job=poll_render_job)
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
    assert "Cancelled after 1 of 4 frames" in session().status
    assert render_job.active_job() is None


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
    monkeypatch.setenv(render_job.BACKEND_ENV, fake())
    assert bpy.ops.gsds.render_dataset() == {'FINISHED'}
    assert session().last_summary.startswith("4 frames, 4 labelled instances")
    assert render_job.active_job() is None


def test_operator_reports_export_errors(scene, monkeypatch):
    monkeypatch.setenv(render_job.BACKEND_ENV, fake())
    scene.camera = None
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    with pytest.raises(RuntimeError, match="Render not started: the scene has no camera"):
        bpy.ops.gsds.render_dataset()
    assert not session().is_rendering


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
    (state / "scenario.sha256").write_text("0" * 64 + "\n")  # another scenario's folder...
    (state / "frames").mkdir()
    (state / "frames" / "frame_0001.json").write_text("{}")  # ...with a finished frame
    before = (tmp_path / "out" / "scenario.json").read_text()
    with pytest.raises(ScenarioExportError, match="already holds a dataset of a different"):
        start_render_job(bpy.context, backend_command=fake())
    assert (tmp_path / "out" / "scenario.json").read_text() == before  # untouched


def test_the_panels_overwrite_switch_reaches_the_backend(scene, tmp_path, monkeypatch):
    monkeypatch.setenv(render_job.BACKEND_ENV, fake())
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


READ_SESSION = """
import sys, bpy
sys.path.insert(0, sys.argv[1])
import blender_addon
blender_addon.register()
bpy.ops.wm.open_mainfile(filepath=sys.argv[2])
session = bpy.context.window_manager.gsds_session
print("STATE", session.is_rendering, repr(session.status), session.progress)
blender_addon.unregister()
"""


def test_a_blend_saved_mid_render_does_not_open_as_rendering(scene, tmp_path):
    """The render state lives on the WindowManager, which Blender never saves."""
    job = start_render_job(bpy.context, backend_command=fake("wait"))
    while job.process.state.done < 1:
        assert poll_render_job(bpy.context, job) == {'RUNNING_MODAL'}
        time.sleep(0.02)
    assert session().is_rendering and session().status.startswith("Rendering 1/4")
    path = tmp_path / "saved_mid_render.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    job.process.cancel(interrupt_grace=5.0)
    assert run_to_end(job)[0] == {'CANCELLED'}
    proc = subprocess.run([sys.executable, "-c", READ_SESSION, str(REPO), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "STATE False '' 0.0" in proc.stdout.splitlines()
    assert "is_rendering" not in scene.gsds.bl_rna.properties  # not on the Scene any more


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


def test_events_with_wrong_field_types_become_log_lines(scene):
    """Well-formed JSON with fields of the wrong types, unknown events: no traceback;
    the run is followed to its end and the odd lines are kept as log text."""
    from fake_backend import GARBLED_LINES

    job = start_render_job(bpy.context, backend_command=fake("garbled"))
    result, seen = run_to_end(job)
    assert result == {'FINISHED'}, job.reports
    state = job.process.state
    assert state.done == state.total == 4 and seen == sorted(seen)
    logged = [message for _, message in state.logs]
    for line in GARBLED_LINES:
        assert any(line in message for message in logged), line
    warnings = [m for level, m in state.logs if level == "warning"]
    assert any("done = None is not integer >= 0" in m for m in warnings)
    assert session().last_summary.startswith("4 frames, 4 labelled instances")


def test_exit_0_without_a_dataset_is_a_failure(scene, tmp_path):
    job = start_render_job(bpy.context, backend_command=fake("nodata"))
    result, _ = run_to_end(job)
    assert result == {'CANCELLED'}
    assert job.process.state.returncode == 0 and job.process.state.summary is not None
    level, message = job.reports[-1]
    manifest = tmp_path / "out" / "manifest.json"
    assert level == 'ERROR' and f"reported success but {manifest} is not readable" in message
    assert session().status.startswith("Failed: ") and session().last_summary == ""


def test_a_dataset_of_another_scenario_is_not_success(scene, tmp_path):
    """The manifest must be of the scenario just submitted (its content fingerprint)."""
    assert run_to_end(start_render_job(bpy.context, backend_command=fake()))[0] == \
        {'FINISHED'}
    job = start_render_job(bpy.context, backend_command=fake("nodata"))  # same scene
    assert run_to_end(job)[0] == {'FINISHED'}  # the earlier manifest is this scenario's
    manifest = tmp_path / "out" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "scenario_sha256": "0" * 64}))
    job = start_render_job(bpy.context, backend_command=fake("nodata"))
    assert run_to_end(job)[0] == {'CANCELLED'}
    assert "describes another scenario" in job.reports[-1][1]


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie left (its parent has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_until_gone(pids: list[int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(process_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running: {pids}"
        time.sleep(0.05)


def recorded_pids(out: Path) -> list[int]:
    return [int(line) for line in (out / "fake_backend_pids.txt").read_text().split()]


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


@needs_proc
def test_a_child_holding_stdout_does_not_hang_the_job(scene, tmp_path):
    """The backend exits but a child of it keeps stdout open (``conda run``, ``srun``):
    the job ends with the process, and the left-over child is stopped."""
    job = start_render_job(bpy.context, backend_command=fake("leak"))
    result, _ = run_to_end(job, timeout=60)  # the child would hold the pipe for 300 s
    assert result == {'FINISHED'}, job.reports
    backend, child = recorded_pids(tmp_path / "out")
    assert job.process.process.pid == backend
    wait_until_gone([child])


@needs_proc
def test_cancel_reaches_a_wrappers_child(scene, tmp_path):
    """A wrapper that dies on Ctrl-C without telling its child: the whole process group
    gets the signal, so the real backend stops cleanly too, and nothing hangs."""
    job = start_render_job(bpy.context, backend_command=fake("wrapper"))
    deadline = time.monotonic() + 60
    while job.process.state.done < 1:
        assert poll_render_job(bpy.context, job) == {'RUNNING_MODAL'}
        assert time.monotonic() < deadline
        time.sleep(0.02)
    job.request_cancel()
    result, _ = run_to_end(job, timeout=60)
    assert result == {'CANCELLED'} and job.process.state.interrupted
    out = tmp_path / "out"
    wait_until_gone(recorded_pids(out))
    assert (out / "fake_backend_interrupted").read_text() == "yes"  # the child's clean exit


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
    summary = session().last_summary
    assert summary.startswith(f"3 frames, {manifest['labelled_instances']} labelled instances")
    assert manifest["labelled_instances"] >= 1  # the instrument is in view
    assert tuple(job.image.size) == (64, 48)
