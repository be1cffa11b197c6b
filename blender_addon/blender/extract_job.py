"""The instrument extraction of this Blender session: start it, follow it, apply it.

:func:`start_extract` reads the active splat proxy and the selected crop empties and
starts ``gs-backend extract`` (:class:`..core.extract_job.ExtractProcess`);
:func:`poll_extract` advances it without blocking, keeps ``WindowManager.gsds_extract``
(never saved) up to date and, at the end, deletes the proxy vertices whose Gaussians were
not kept; :func:`run_extract_blocking` is the loop for scripts and background mode. The
operators (:mod:`.operators_extract`) use these; tests call :func:`poll_extract` directly
(timers do not fire under the bpy module).

Crop volumes are the selected empties whose display type is Cube (box), Sphere or Circle
(a cylinder along the empty's local Y, the circle's normal; half-length = display size x
Y scale), placed where the viewport draws them (:func:`..core.extract_job.
capture_from_volume`). ``Object.gsds_crop`` (Keep / Remove) says whether a volume keeps
what is inside it or removes it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bpy
from bpy.types import Context, Object

from .modal_job import Report, SessionJob, tag_redraw

if TYPE_CHECKING:
    import numpy as np

    from ..core.extract_job import CropVolume, ExtractProcess


_active_run: ExtractRun | None = None


@dataclass
class ExtractRun(SessionJob):
    """An extraction started from Blender: the backend process and the proxy it edits.

    The proxy is looked up by name when the result arrives (the object may have been
    removed, renamed or undone meanwhile). ``report`` receives ({'INFO'|'WARNING'|
    'ERROR'}, message), e.g. an operator's ``report``; ``reports`` keeps every message.
    """

    process: ExtractProcess
    proxy_name: str
    source_path: str
    report: Report | None = None
    reports: list[tuple[str, str]] = field(default_factory=list)
    deleted: int = 0  # proxy vertices deleted when the result was applied
    started: float = field(default_factory=time.monotonic)



def active_run() -> ExtractRun | None:
    """The extraction running in this Blender session, if any."""
    return _active_run


def extract_state(context: Context | None = None) -> Any:
    """``WindowManager.gsds_extract``: is_running, proxy, status, last_summary."""
    wm = getattr(context, "window_manager", None) or bpy.context.window_manager
    return wm.gsds_extract


def active_proxy(context: Context) -> Object | None:
    """The active object when it is a splat proxy, else None."""
    from .proxy_mesh import is_proxy

    obj = context.view_layer.objects.active if context.view_layer else None
    return obj if is_proxy(obj) else None


def crop_empties(context: Context) -> tuple[list[Object], list[Object]]:
    """The selected empties, by name: (crop volumes, others ignored)."""
    from ..core.extract_job import EMPTY_SHAPES

    empties = sorted((o for o in context.view_layer.objects.selected if o.type == 'EMPTY'),
                     key=lambda o: o.name)
    volumes = [o for o in empties if o.empty_display_type in EMPTY_SHAPES]
    return volumes, [o for o in empties if o.empty_display_type not in EMPTY_SHAPES]


def crop_volumes(proxy: Object, empties: list[Object]) -> list[CropVolume]:
    """The crop volumes of ``empties`` in the capture (PLY) coordinates of ``proxy``.

    Raises:
        ExtractError: a matrix is not invertible or a display size is 0.
    """
    import numpy as np

    from ..core.extract_job import EMPTY_SHAPES, CropVolume, capture_from_volume
    from ..core.proxy_pose import world_from_file

    world_from_capture = world_from_file(np.array(proxy.matrix_world),
                                         np.array(proxy.gsds.source_origin))
    volumes = []
    for empty in empties:
        shape = EMPTY_SHAPES[empty.empty_display_type]
        matrix = capture_from_volume(world_from_capture, np.array(empty.matrix_world),
                                     empty.empty_display_size, shape, empty.name)
        mode = "remove" if empty.gsds_crop == 'REMOVE' else "keep"
        volumes.append(CropVolume(shape, mode, matrix, empty.name))
    return volumes


def start_extract(context: Context, *, auto: bool = True, report: Report | None = None,
                  backend_command: str | None = None) -> ExtractRun:
    """Start ``gs-backend extract`` on the active proxy's source file, with the selected
    crop empties as volumes. ``backend_command`` defaults to the add-on preferences (or
    ``GSDS_BACKEND``).

    Raises:
        ExtractError: no active proxy, its source file is missing, an extraction is
            already running, nothing to do (``auto`` off and no volume), or a volume
            cannot be placed.
        BackendError: the backend cannot be started.
        OSError: the temporary folder cannot be written.
    """
    global _active_run
    from ..core.extract_job import ExtractError, ExtractProcess
    from ..core.scenario_builder import ScenarioExportError
    from .render_job import render_settings
    from .scene_gather import blend_abspath

    if _active_run is not None and not _active_run.process.state.finished:
        raise ExtractError("an extraction is already running")
    proxy = active_proxy(context)
    if proxy is None:
        raise ExtractError("make a splat object the active object (File > Import > "
                           "Gaussian Splat)")
    if not proxy.gsds.source_path:
        raise ExtractError(f"{proxy.name!r} has no source file: import the splat again")
    try:
        source = blend_abspath(proxy.gsds.source_path, f"source file of {proxy.name!r}")
    except ScenarioExportError as exc:  # an unsaved .blend with a // path
        raise ExtractError(str(exc)) from None
    if not os.path.isfile(source):
        raise ExtractError(f"{proxy.name!r}: source file not found: {source}")
    empties, ignored = crop_empties(context)
    if not auto and not empties:
        raise ExtractError("crop only, but no crop volume is selected: select Cube, "
                           "Sphere or Circle empties with the splat object")
    volumes = crop_volumes(proxy, empties)
    command = render_settings(context)[0] if backend_command is None else backend_command
    process = ExtractProcess.start_extract(command, source, volumes, auto=auto,
                                           rows=proxy.gsds.gaussian_count or None)
    run = ExtractRun(process, proxy.name, proxy.gsds.source_path, report=report)
    _active_run = run
    if ignored:
        run.emit('INFO', "Not crop volumes (display type is not Cube, Sphere or Circle): "
                 + ", ".join(o.name for o in ignored))
    state = extract_state(context)
    state.is_running = True
    state.proxy = proxy.name
    state.status = _running_status(run)
    return run


def _running_status(run: ExtractRun) -> str:
    seconds = int(time.monotonic() - run.started)
    if run.process.state.cancel_requested:
        return f"Stopping the extraction of {run.proxy_name}..."
    return f"Extracting {run.proxy_name}... ({seconds} s)"


def poll_extract(context: Context, run: ExtractRun) -> set[str]:
    """Advance the extraction; never blocks. At the end, apply the kept rows to the proxy
    (one vertex deletion) and write ``last_summary``, or report the failure.

    Returns:
        {'RUNNING_MODAL'} while the backend runs, {'FINISHED'} when the proxy holds the
        extracted instrument, {'CANCELLED'} when it failed or was cancelled (the proxy is
        then unchanged).
    """
    global _active_run
    from ..core.extract_job import ExtractError

    state = run.process.poll()
    session = extract_state(context)
    if not state.finished:
        status = _running_status(run)
        if status != session.status:
            session.status = status
            tag_redraw(context)
        return {'RUNNING_MODAL'}

    if _active_run is run:
        _active_run = None
    session.is_running = False
    tag_redraw(context)
    try:
        if state.succeeded:
            assert run.process.report is not None and run.process.keep is not None
            try:
                run.deleted = apply_keep(run, run.process.keep)
            except ExtractError as exc:
                return _failed(session, run, str(exc))
            summary = run.process.report.summary()
            session.last_summary = f"{run.proxy_name}: {summary}"
            session.status = f"Done: {run.deleted:,} proxy vertices deleted"
            run.emit('INFO', f"Extracted {run.proxy_name}: {summary}; {run.deleted:,} "
                             "proxy vertices deleted")
            return {'FINISHED'}
        if state.interrupted:
            session.status = "Extraction cancelled"
            run.emit('WARNING', f"Extraction of {run.proxy_name} cancelled; the splat "
                                "object is unchanged")
            return {'CANCELLED'}
        return _failed(session, run, state.error or "the backend failed")
    finally:
        run.process.cleanup()


def _failed(session: Any, run: ExtractRun, message: str) -> set[str]:
    session.status = f"Failed: {message}"
    run.emit('ERROR', f"Extraction failed: {message}")
    return {'CANCELLED'}


def apply_keep(run: ExtractRun, keep: np.ndarray) -> int:
    """Delete the vertices of the run's proxy whose ``gs_index`` is not in ``keep``
    (``[K]`` row indices); vertices deleted before stay deleted. Works in Object and
    Edit Mode (bmesh keeps every attribute). Returns how many vertices went.

    Raises:
        ExtractError: the proxy is gone or was re-imported from another file, or nothing
            of it would be left.
    """
    import bmesh
    import numpy as np

    from ..core.extract_job import ExtractError, vertices_to_delete
    from .proxy_mesh import ATTR_INDEX, is_proxy

    obj = bpy.data.objects.get(run.proxy_name)
    if not is_proxy(obj) or obj.gsds.source_path != run.source_path:
        raise ExtractError(f"the splat object {run.proxy_name!r} was removed, renamed or "
                           "re-imported during the extraction; nothing was changed")
    mesh = obj.data
    edit = obj.mode == 'EDIT'
    bm = bmesh.from_edit_mesh(mesh) if edit else bmesh.new()
    try:
        if not edit:
            bm.from_mesh(mesh)
        layer = bm.verts.layers.int.get(ATTR_INDEX)
        index = np.fromiter((v[layer] for v in bm.verts), dtype=np.int64,
                            count=len(bm.verts))
        drop = vertices_to_delete(index, keep)
        if drop.all():
            raise ExtractError(f"none of the {keep.size:,} Gaussians the extraction kept is "
                               f"left in {obj.name!r} (its vertices were deleted); nothing "
                               "was changed")
        if drop.any():
            bm.verts.ensure_lookup_table()
            bmesh.ops.delete(bm, geom=[bm.verts[i] for i in np.flatnonzero(drop)],
                             context='VERTS')
            if edit:
                bmesh.update_edit_mesh(mesh)
            else:
                bm.to_mesh(mesh)
                mesh.update()
    finally:
        if not edit:
            bm.free()
    return int(drop.sum())


def run_extract_blocking(context: Context, run: ExtractRun,
                         interval: float = 0.05) -> set[str]:
    """Poll until the backend is done (scripts, background mode). Ctrl-C cancels it."""
    try:
        while 'RUNNING_MODAL' in (result := poll_extract(context, run)):
            time.sleep(interval)
        return result
    except KeyboardInterrupt:
        run.process.cancel(interrupt_grace=5.0)
        return poll_extract(context, run)


def stop_active_run() -> None:
    """Do not leave a backend running when the add-on is disabled or Blender quits."""
    global _active_run
    run, _active_run = _active_run, None
    if run is not None and not run.process.state.finished:
        run.process.cancel(interrupt_grace=5.0)
        run.process.cleanup()
