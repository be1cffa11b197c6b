"""``gsds.render_dataset`` and ``gsds.cancel_render``: render the dataset from Blender.

The render operator exports the scene into ``<output folder>/scenario.json`` and runs
``gs-backend render`` on it as a child process. In the UI it is a modal operator with
a timer, so Blender stays usable; without a window (``blender -b``, the bpy module)
it blocks until the backend is done. Either way the work happens in one plain
function, :func:`poll_render_job`, which tests call directly (timers do not fire
under the bpy module).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import bpy
from bpy.props import BoolProperty
from bpy.types import Context, Operator

from ..core.backend_process import BackendJob

Report = Callable[[set[str], str], None]
TIMER_INTERVAL_S = 0.2

_active_job: RenderJob | None = None


@dataclass
class RenderJob:
    """A render started from Blender: the backend process and where its results go.

    ``report`` receives ({'INFO'|'WARNING'|'ERROR'}, message), e.g. an operator's
    ``report``; ``reports`` keeps every message for scripts and tests.
    """

    process: BackendJob
    scene_name: str
    out_dir: Path
    scenario_path: Path
    report: Report | None = None
    reports: list[tuple[str, str]] = field(default_factory=list)
    image: Any = None  # the first rendered frame, loaded as a bpy Image at the end
    started: float = field(default_factory=time.monotonic)

    def emit(self, level: str, message: str) -> None:
        self.reports.append((level, message))
        if self.report is not None:
            self.report({level}, message)

    def request_cancel(self) -> None:
        self.process.request_cancel()


def active_job() -> RenderJob | None:
    """The render job running in this Blender session, if any."""
    return _active_job


BACKEND_ENV = "GSDS_BACKEND"


def render_settings(context: Context) -> tuple[str, str]:
    """(backend command, device): the add-on preferences, defaults without them
    ('' = ``gs-backend`` on PATH, 'AUTO'). The environment variable ``GSDS_BACKEND``,
    when set, overrides the command (handy for headless runs and CI)."""
    import os

    from .preferences import get_preferences

    prefs = get_preferences(context)
    command, device = ("", "AUTO") if prefs is None else (prefs.backend_command, prefs.device)
    return os.environ.get(BACKEND_ENV) or command, device


def start_render_job(context: Context, *, overwrite: bool = False, report: Report | None = None,
                     backend_command: str | None = None, device: str | None = None,
                     frames: str | None = None) -> RenderJob:
    """Export the scene into ``<output folder>/scenario.json`` and start the backend.

    ``backend_command`` / ``device`` default to the add-on preferences; ``frames``
    ('ALL'/'KEYFRAMES') to ``Scene.gsds.frames``.

    Raises:
        ScenarioExportError: the scene cannot be exported, or the output folder holds
            a dataset of another scenario and not ``overwrite``.
        BackendError: the backend cannot be started.
    """
    global _active_job
    from ..core.scenario_builder import write_scenario
    from .operators_export import build_scene_scenario
    from .scene_gather import blend_abspath

    if _active_job is not None and not _active_job.process.state.finished:
        from ..core.scenario_builder import ScenarioExportError

        raise ScenarioExportError("a dataset render is already running")
    scene = context.scene
    settings = scene.gsds
    out_dir = Path(blend_abspath(settings.output_dir or "//gs_dataset/", "output folder"))
    path = out_dir / "scenario.json"
    scenario = build_scene_scenario(context, path, frames)
    check_output_folder(out_dir, scenario, overwrite=overwrite)
    write_scenario(path, scenario)

    pref_command, pref_device = render_settings(context)
    command = pref_command if backend_command is None else backend_command
    process = BackendJob.start(command, path, out_dir, device=(device or pref_device),
                               overwrite=overwrite)
    job = RenderJob(process, scene.name, out_dir, path, report=report)
    _active_job = job
    settings.is_rendering = True
    settings.progress = 0.0
    settings.status = f"Starting the backend ({len(scenario['frames'])} frames)..."
    return job


def check_output_folder(out_dir: Path, scenario: dict[str, Any], *, overwrite: bool) -> None:
    """Refuse, before touching it, a folder that holds a dataset of another scenario.

    The backend refuses it too, but only after ``scenario.json`` (which describes the
    dataset in the folder) would have been replaced. Re-rendering the same scenario
    resumes; ``overwrite`` replaces the dataset.
    """
    from ..core.scenario_builder import ScenarioExportError

    # The backend's rule (gs_backend.dataset.output_folder.holds_dataset): a manifest
    # or at least one finished frame record.
    records = out_dir / ".gs-render" / "frames"
    used = (out_dir / "manifest.json").exists() or (
        records.is_dir() and any(records.glob("*.json")))
    if not used or overwrite:
        return
    try:
        previous = json.loads((out_dir / "scenario.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if not isinstance(previous, dict) or _comparable(previous) != _comparable(scenario):
        raise ScenarioExportError(
            f"the output folder {out_dir} already holds a dataset of a different scenario: "
            "choose another output folder, or tick Overwrite (GS Dataset tab, Dataset panel) to "
            "replace it")


def _comparable(scenario: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(scenario))
    data.pop("meta", None)
    return data


def poll_render_job(context: Context, job: RenderJob) -> set[str]:
    """Advance the render job by reading the backend's events; never blocks.

    Updates ``Scene.gsds.progress`` / ``status``, reports warnings and errors, and at the
    end writes ``last_summary`` and loads the first rendered frame as an Image.

    Returns:
        {'RUNNING_MODAL'} while the backend runs, {'FINISHED'} when the dataset is
        complete, {'CANCELLED'} when it failed or was cancelled.
    """
    global _active_job
    state = job.process.poll()
    for event in state.new_events:
        if event.get("event") == "log" and event.get("level") in ("warning", "error"):
            job.emit('WARNING', f"Backend: {event.get('message', '')}")
    scene = bpy.data.scenes.get(job.scene_name)
    settings = scene.gsds if scene is not None else None
    if settings is not None:
        settings.progress = state.fraction
        settings.status = state.status_text()
    if state.new_events or state.finished:
        _tag_redraw(context)
    if not state.finished:
        return {'RUNNING_MODAL'}

    if _active_job is job:
        _active_job = None
    if settings is not None:
        settings.is_rendering = False
    if state.succeeded:
        summary = state.summary.text() if state.summary is not None else \
            f"{state.done} frames"
        job.image = load_first_image(job.out_dir)
        if settings is not None:
            settings.last_summary = summary
            settings.progress = 1.0
        _show_image(context, job.image)
        job.emit('INFO', f"Dataset rendered to {job.out_dir}: {summary}")
        return {'FINISHED'}
    if state.interrupted:
        if settings is not None:
            settings.progress = 0.0
        job.emit('WARNING', f"Render cancelled after {state.done} of {state.total} frames; "
                            "the finished frames are kept, render again to resume")
        return {'CANCELLED'}
    if settings is not None:
        settings.progress = 0.0
    job.emit('ERROR', f"Render failed: {state.error}")
    return {'CANCELLED'}


def run_render_job_blocking(context: Context, job: RenderJob,
                            interval: float = 0.1) -> set[str]:
    """Poll until the backend is done (for scripts and background mode). Ctrl-C cancels."""
    try:
        while True:
            result = poll_render_job(context, job)
            if 'RUNNING_MODAL' not in result:
                return result
            time.sleep(interval)
    except KeyboardInterrupt:
        job.process.cancel()
        return poll_render_job(context, job)


def load_first_image(out_dir: Path) -> Any:
    """The first frame of the dataset in ``out_dir`` as a bpy Image (None if not found)."""
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
        frames = sorted(manifest.get("frames", []), key=lambda f: f.get("index", 0))
        relative = next(f["image"] for f in frames if f.get("image"))
    except (OSError, ValueError, StopIteration, KeyError, TypeError, AttributeError):
        return None
    path = out_dir / relative
    if not path.is_file():
        return None
    existing = {img.as_pointer() for img in bpy.data.images}
    image = bpy.data.images.load(str(path), check_existing=True)
    if image.as_pointer() in existing:
        image.reload()  # the same file, rendered again
    return image


def _show_image(context: Context, image: Any) -> None:
    """Show ``image`` in the open Image Editors (there may be none)."""
    if image is None:
        return
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == 'IMAGE_EDITOR':
                area.spaces.active.image = image


def _tag_redraw(context: Context) -> None:
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            area.tag_redraw()


# ----------------------------------------------------------------------------- operators


class GSDS_OT_render_dataset(Operator):
    """Export the scene and render the labelled dataset with gs-backend into the output
    folder (runs in the background; Esc or Cancel stops it, and rendering again resumes)"""

    bl_idname = "gsds.render_dataset"
    bl_label = "Render Dataset"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    overwrite: BoolProperty(
        name="Overwrite",
        description="Replace a dataset of a different scenario in the output folder",
        default=False,
    )

    _job = None  # RenderJob of this invocation
    _timer = None

    @classmethod
    def poll(cls, context: Context) -> bool:
        return (context.scene is not None and hasattr(context.scene, "gsds")
                and _active_job is None)

    def execute(self, context: Context) -> set[str]:
        from ..core.backend_process import BackendError
        from ..core.camera_intrinsics import CameraConversionError
        from ..core.scenario_builder import ScenarioExportError

        overwrite = self.overwrite or context.scene.gsds.overwrite
        try:
            self._job = start_render_job(context, overwrite=overwrite, report=self.report)
        except (ScenarioExportError, CameraConversionError, BackendError) as exc:
            self.report({'ERROR'}, f"Render not started: {exc}")
            return {'CANCELLED'}
        except OSError as exc:
            self.report({'ERROR'}, f"Render not started: {exc}")
            return {'CANCELLED'}
        if bpy.app.background or context.window is None:
            # No event loop (blender -b, the bpy module): nothing would deliver timer events.
            return run_render_job_blocking(context, self._job)
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def invoke(self, context: Context, event: Any) -> set[str]:
        return self.execute(context)

    def modal(self, context: Context, event: Any) -> set[str]:
        job = self._job
        if job is None:
            return {'CANCELLED'}
        if event.type == 'ESC' and event.value == 'PRESS':
            job.request_cancel()
            return {'RUNNING_MODAL'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        result = poll_render_job(context, job)
        if 'RUNNING_MODAL' not in result:
            self._remove_timer(context)
        return result

    def cancel(self, context: Context) -> None:
        """Blender ends the operator (file loaded, window closed): stop the backend."""
        if self._job is not None:
            self._job.process.cancel(interrupt_grace=5.0)
            poll_render_job(context, self._job)
        self._remove_timer(context)

    def _remove_timer(self, context: Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


class GSDS_OT_cancel_render(Operator):
    """Stop the running dataset render; the frames already rendered are kept and
    rendering again resumes"""

    bl_idname = "gsds.cancel_render"
    bl_label = "Cancel Render"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    @classmethod
    def poll(cls, context: Context) -> bool:
        scene = context.scene
        stale = scene is not None and hasattr(scene, "gsds") and scene.gsds.is_rendering
        return _active_job is not None or stale

    def execute(self, context: Context) -> set[str]:
        if _active_job is None:  # state left over from a session that ended mid-render
            reset_stale_render_state()
            return {'FINISHED'}
        _active_job.request_cancel()
        if context.scene is not None and hasattr(context.scene, "gsds"):
            context.scene.gsds.status = "Stopping (finishing the frames in flight)..."
        self.report({'INFO'}, "Stopping the dataset render...")
        return {'FINISHED'}


def reset_stale_render_state() -> None:
    """Clear ``is_rendering`` saved in a .blend while a render ran (no job runs now)."""
    if _active_job is not None:
        return
    for scene in bpy.data.scenes:
        settings = getattr(scene, "gsds", None)
        if settings is not None and settings.is_rendering:
            settings.is_rendering = False
            settings.progress = 0.0
            settings.status = ""


@bpy.app.handlers.persistent
def _on_load_post(*_args: Any) -> None:
    reset_stale_render_state()


def _stop_active_job() -> None:
    """Do not leave a backend running when the add-on is disabled or Blender quits."""
    global _active_job
    job, _active_job = _active_job, None
    if job is not None and not job.process.state.finished:
        job.process.cancel(interrupt_grace=5.0)


classes = (GSDS_OT_render_dataset, GSDS_OT_cancel_render)


def register() -> None:
    import atexit

    for cls in classes:
        bpy.utils.register_class(cls)
    atexit.register(_stop_active_job)
    bpy.app.handlers.load_post.append(_on_load_post)


def unregister() -> None:
    import atexit

    atexit.unregister(_stop_active_job)
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    _stop_active_job()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
