"""The dataset render of this Blender session: start it, follow it, show the result.

:func:`start_render_job` exports the scene and hands it to
:func:`..core.render_job.submit` (folder rule, ``scenario.json``, the backend process);
:func:`poll_render_job` advances it without blocking and keeps the session state
(``WindowManager.gsds_session``: never saved in a .blend) up to date;
:func:`run_render_job_blocking` is the loop for scripts and background mode. The
operators (:mod:`.operators_render`) and ``scripts/render_blend.py`` use these; tests
call :func:`poll_render_job` directly (timers do not fire under the bpy module).
The backend machinery (and ``gs_contract``) is imported on first use, not at
registration, so that enabling the add-on stays fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.types import Context

from .modal_job import Report, SessionJob, tag_redraw

if TYPE_CHECKING:
    from gs_contract.protocol import Event

    from ..core.backend_process import BackendJob
    from ..core.sidecar_render import SidecarRenderJob

BACKEND_ENV = "GSDS_BACKEND"

_active_job: RenderJob | None = None


@dataclass
class RenderJob(SessionJob):
    """A render started from Blender: the backend process (or the sidecar's job, which
    behaves alike) and where its results go.

    ``report`` receives ({'INFO'|'WARNING'|'ERROR'}, message), e.g. an operator's
    ``report``; ``reports`` keeps every message for scripts and tests.
    """

    process: BackendJob | SidecarRenderJob
    out_dir: Path
    report: Report | None = None
    reports: list[tuple[str, str]] = field(default_factory=list)
    image: Any = None  # the first rendered frame, loaded as a bpy Image at the end



def active_job() -> RenderJob | None:
    """The render job running in this Blender session, if any."""
    return _active_job


def session_state(context: Context | None = None) -> Any:
    """``WindowManager.gsds_session``: is_rendering, progress, status, last_summary."""
    wm = getattr(context, "window_manager", None) or bpy.context.window_manager
    return wm.gsds_session


def render_settings(context: Context) -> tuple[str, str]:
    """(backend command, device): the add-on preferences, defaults without them
    ('' = ``gs-backend`` on PATH, 'AUTO'). The environment variable ``GSDS_BACKEND``,
    when set, overrides the command (handy for headless runs and CI)."""
    from .preferences import get_preferences

    prefs = get_preferences(context)
    command, device = ("", "AUTO") if prefs is None else (prefs.backend_command, prefs.device)
    return os.environ.get(BACKEND_ENV) or command, device


def start_render_job(context: Context, *, out_dir: str | os.PathLike[str] | None = None,
                     overwrite: bool = False, report: Report | None = None,
                     backend_command: str | None = None, device: str | None = None,
                     frames: str | None = None, shard: str | None = None) -> RenderJob:
    """Export the scene into ``<output folder>/scenario.json`` and start the backend:
    a job of the sidecar when one is connected (:func:`.sidecar_session.ready_client`),
    else a child process.

    ``out_dir`` defaults to ``Scene.gsds.output_dir``; ``backend_command`` / ``device``
    (child process only) to the add-on preferences; ``frames`` ('ALL'/'KEYFRAMES') to
    ``Scene.gsds.frames``; ``shard`` ('I/N' or 'auto', e.g. from a job array) is passed to
    a child backend as ``--shard`` (a shard always runs as a child process).

    Raises:
        ScenarioExportError: the scene cannot be exported, or the output folder holds
            a dataset of another scenario and not ``overwrite``.
        CameraConversionError: the camera cannot be converted.
        BackendError: the backend cannot be started.
        SidecarError: the sidecar refused the job or cannot be reached.
        OSError: ``scenario.json`` cannot be written.
    """
    global _active_job
    from ..core.render_job import scenario_file, submit, submit_to_sidecar
    from ..core.scenario_builder import ScenarioExportError
    from .operators_export import build_scene_scenario
    from .scene_gather import blend_abspath
    from .sidecar_session import ready_client

    if _active_job is not None and not _active_job.process.state.finished:
        raise ScenarioExportError("a dataset render is already running")
    if out_dir is None:
        out_dir = blend_abspath(context.scene.gsds.output_dir or "//gs_dataset/",
                                "output folder")
    out = Path(os.path.abspath(out_dir))
    scenario = build_scene_scenario(context, scenario_file(out), frames)
    client = ready_client() if backend_command is None and shard is None else None
    if client is not None:
        process: BackendJob | SidecarRenderJob = submit_to_sidecar(
            scenario, out, client=client, overwrite=overwrite)
        starting = f"Sent to the sidecar ({len(scenario['frames'])} frames)..."
    else:
        pref_command, pref_device = render_settings(context)
        process = submit(scenario, out,
                         command=pref_command if backend_command is None else backend_command,
                         device=device or pref_device, overwrite=overwrite, shard=shard)
        starting = f"Starting the backend ({len(scenario['frames'])} frames)..."
    job = RenderJob(process, out, report=report)
    _active_job = job
    session = session_state(context)
    session.is_rendering = True
    session.progress = 0.0
    session.status = starting
    return job


def poll_render_job(context: Context, job: RenderJob) -> set[str]:
    """Advance the render job by reading the backend's events; never blocks.

    Updates the session's ``progress`` / ``status``, reports warnings and errors, and at
    the end writes ``last_summary`` and loads the first rendered frame as an Image.

    Returns:
        {'RUNNING_MODAL'} while the backend runs, {'FINISHED'} when the dataset is
        complete, {'CANCELLED'} when it failed or was cancelled.
    """
    global _active_job
    from gs_contract.protocol import LogEvent

    state = job.process.poll()
    for event in state.new_events:
        if isinstance(event, LogEvent) and event.level in ("warning", "error"):
            job.emit('WARNING', f"Backend: {event.message}")
    session = session_state(context)
    session.progress = state.fraction
    session.status = state.status_text()
    if state.new_events or state.finished:
        tag_redraw(context)
    if not state.finished:
        return {'RUNNING_MODAL'}

    if _active_job is job:
        _active_job = None
    session.is_rendering = False
    if state.succeeded:
        summary = state.summary.text() if state.summary is not None else \
            f"{state.done} frames"
        job.image = load_first_image(job.out_dir)
        session.last_summary = summary
        session.progress = 1.0
        _show_image(context, job.image)
        job.emit('INFO', f"Dataset rendered to {job.out_dir}: {summary}")
        return {'FINISHED'}
    session.progress = 0.0
    lost = getattr(job.process, "lost", None)
    if lost is not None:  # the sidecar went away: the panel offers Retry
        from . import sidecar_session

        sidecar_session.fail(context, lost)
    if state.interrupted:
        job.emit('WARNING', f"Render cancelled after {state.done} of {state.total} frames; "
                            "the finished frames are kept, render again to resume")
    else:
        job.emit('ERROR', f"Render failed: {state.error}")
    return {'CANCELLED'}


def run_render_job_blocking(context: Context, job: RenderJob, interval: float = 0.05,
                            on_events: Callable[[list[Event]], None] | None = None,
                            interrupt_grace: float | None = None) -> set[str]:
    """Poll until the backend is done (for scripts and background mode).

    ``on_events`` sees each poll's new events (e.g. to print progress). Ctrl-C (a
    KeyboardInterrupt here) cancels the backend, giving it ``interrupt_grace`` seconds
    to finish its frames in flight, and returns {'CANCELLED'}.
    """
    try:
        while True:
            result = poll_render_job(context, job)
            if on_events is not None and job.process.state.new_events:
                on_events(job.process.state.new_events)
            if 'RUNNING_MODAL' not in result:
                return result
            time.sleep(interval)
    except KeyboardInterrupt:
        if interrupt_grace is None:
            job.process.cancel()
        else:
            job.process.cancel(interrupt_grace=interrupt_grace)
        return poll_render_job(context, job)


def load_first_image(out_dir: Path) -> Any:
    """The first frame of the dataset in ``out_dir`` as a bpy Image (None if not found)."""
    from ..core.render_job import first_image

    path = first_image(out_dir)
    if path is None:
        return None
    existing = {img.as_pointer() for img in bpy.data.images}
    image = bpy.data.images.load(str(path), check_existing=True)
    if image.as_pointer() in existing:
        image.reload()  # the same file, rendered again
    return image


def stop_active_job() -> None:
    """Do not leave a backend running when the add-on is disabled or Blender quits."""
    global _active_job
    job, _active_job = _active_job, None
    if job is not None and not job.process.state.finished:
        job.process.cancel(interrupt_grace=5.0)


def _show_image(context: Context, image: Any) -> None:
    """Show ``image`` in the open Image Editors (there may be none)."""
    if image is None:
        return
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == 'IMAGE_EDITOR':
                area.spaces.active.image = image
