"""Previews through the sidecar: one frame on request, or live while the scene changes.

The scene is read on Blender's main thread exactly as the export reads it (the gather of
:mod:`.scene_gather` for the current frame only, then
:func:`..core.scenario_builder.build_scenario`, asset paths relative to ``base_dir``),
and the HTTP request runs on a worker thread
(:class:`..core.sidecar_schedule.LatestWins`: one request at a time, a newer one
supersedes the one in flight, whose result is dropped). :func:`tick` (the add-on's timer
body: a plain function, which tests call directly, since timers never fire under the bpy
module) advances the sidecar session, sends what waits, and writes a finished result
into "GS Preview" (:mod:`.preview_image`).

Live Preview (``WindowManager.gsds_sidecar.live_preview``): ``depsgraph_update_post`` and
``frame_change_post`` handlers (:func:`on_depsgraph_update`, :func:`on_frame_change`)
only mark the preview dirty; :func:`tick` renders once the changes have settled
(:class:`..core.sidecar_schedule.Debouncer`). Updates of images (the preview itself),
screens and the like do not count, nor does the frame stepping of the gather itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bpy
from bpy.app.handlers import persistent
from bpy.types import Context

from . import sidecar_session

if TYPE_CHECKING:
    from ..core.sidecar_client import PreviewImage, SidecarClient
    from ..core.sidecar_schedule import Debouncer, LatestWins

TIMER_INTERVAL_S = 0.1
IDLE_INTERVAL_S = 0.5
RELEVANT_ID_TYPES = frozenset({'OBJECT', 'MESH', 'CAMERA', 'SCENE', 'COLLECTION', 'ACTION'})
"""Data whose change changes the rendered frame (poses, proxies, camera, settings)."""
# Errors that mean the sidecar itself is unusable (the panel then offers Retry), as
# opposed to a refused request (a missing asset, a bad scenario).
SESSION_ERRORS = frozenset({"unreachable", "timeout", "auth", "version", "server"})


@dataclass(frozen=True)
class PreviewRequest:
    """What the worker sends: the client and the request body."""

    client: SidecarClient
    body: dict[str, Any]


@dataclass(frozen=True)
class PreviewDone:
    """A finished preview: the image, the Blender frame, render and round-trip seconds."""

    image: Any
    frame: int
    render_s: float | None
    total_s: float


class _State:
    """Module state of the previews (this Blender session only)."""

    def __init__(self) -> None:
        self.worker: LatestWins[PreviewRequest, PreviewImage] | None = None
        self.waiting: tuple[dict[str, Any], int] | None = None  # for a sidecar not ready
        self.debounce: Debouncer | None = None
        self.gathering = False  # the gather steps frames: its own changes do not count
        self.last: PreviewDone | None = None
        self.sent: dict[int, tuple[int, float]] = {}  # request -> (Blender frame, sent at)


_state = _State()


def _run(request: PreviewRequest) -> PreviewImage:
    return request.client.preview(request.body)


def worker() -> LatestWins[PreviewRequest, PreviewImage]:
    """The worker that sends previews (made on first use)."""
    from ..core.sidecar_schedule import LatestWins

    if _state.worker is None:
        _state.worker = LatestWins(_run)
    return _state.worker


def debouncer(clock: Callable[[], float] | None = None) -> Debouncer:
    """The live preview's debouncer; ``clock`` replaces its clock (tests)."""
    from ..core.sidecar_schedule import Debouncer

    if _state.debounce is None or clock is not None:
        _state.debounce = Debouncer(clock=clock or time.monotonic)
    return _state.debounce


def last_preview() -> PreviewDone | None:
    """The latest preview written into "GS Preview"."""
    return _state.last


# --------------------------------------------------------------------------- requests


def build_preview_body(context: Context) -> tuple[dict[str, Any], int]:
    """The preview request for the scene camera at the current frame, and that frame.

    Raises:
        ScenarioExportError: the scene cannot be exported (as for a dataset render).
    """
    from gs_contract.sidecar import preview_request

    from ..core.scenario_builder import build_scenario
    from .scene_gather import gather_scene

    frame = context.scene.frame_current
    _state.gathering = True
    try:
        gathered = gather_scene(context, "CURRENT")
    finally:
        _state.gathering = False
    base_dir = Path(gathered.objects[0].source_path).parent
    scenario = build_scenario(gathered, base_dir)
    settings = sidecar_session.sidecar_state(context)
    body = preview_request(scenario, 0, base_dir=base_dir,
                           overlay=bool(settings.preview_overlay),
                           scale=round(float(settings.preview_scale), 4))
    return body, frame


def request_preview(context: Context) -> None:
    """Read the scene now and send its preview (connecting to the sidecar first when
    needed: the request then waits for it). Never blocks on the network.

    Raises:
        ScenarioExportError, CameraConversionError: the scene cannot be exported.
    """
    body, frame = build_preview_body(context)
    if _state.debounce is not None:
        _state.debounce.clear()
    current = sidecar_session.ensure(context)
    _state.waiting = (body, frame)
    _send_waiting(current)
    _set_status(context, f"Rendering the preview of frame {frame}...")


def _send_waiting(current: sidecar_session.SidecarSession) -> None:
    if _state.waiting is None or current.phase != 'READY' or current.client is None:
        return
    body, frame = _state.waiting
    _state.waiting = None
    seq = worker().submit(PreviewRequest(current.client, body))
    _state.sent[seq] = (frame, time.monotonic())


# --------------------------------------------------------------------------- the timer


def tick(context: Context | None = None) -> float:
    """One step of the timer: advance the sidecar, send what waits, show what finished,
    start a live render when due. Returns the seconds until the next step."""
    context = context or bpy.context
    sidecar_session.step(context)
    current = sidecar_session.session()
    if current is not None:
        if current.phase == 'ERROR' and _state.waiting is not None:
            _state.waiting = None
            _set_status(context, "No preview: the sidecar cannot be used (see above)")
        _send_waiting(current)
    if _state.worker is not None:
        outcome = _state.worker.collect()
        if outcome is not None:
            _finish(context, outcome)
    settings = sidecar_session.sidecar_state(context)
    live = settings is not None and settings.live_preview
    if live and _state.debounce is not None and _state.debounce.due():
        _live_render(context)
    busy = _state.waiting is not None or (_state.worker is not None and _state.worker.busy)
    starting = current is not None and current.phase in ('STARTING', 'CONNECTING')
    return TIMER_INTERVAL_S if live or busy or starting else IDLE_INTERVAL_S


def wait_for_preview(context: Context, timeout: float) -> PreviewDone | None:
    """Block until the preview requested last is shown (scripts, background mode, where
    no timer runs); None when it failed (the status says why) or took over ``timeout``."""
    deadline = time.monotonic() + timeout
    before = _state.last
    current = sidecar_session.session()
    if current is not None:
        current.wait_ready(timeout)
    tick(context)
    if _state.worker is not None:
        outcome = _state.worker.wait(max(0.0, deadline - time.monotonic()))
        if outcome is not None:
            _finish(context, outcome)
    return _state.last if _state.last is not before else None


def _finish(context: Context, outcome: Any) -> None:
    from ..core.sidecar_client import SidecarError
    from .preview_image import show_in_image_editor, write_preview

    frame, sent_at = _state.sent.get(outcome.seq, (-1, time.monotonic()))
    _state.sent = {seq: sent for seq, sent in _state.sent.items() if seq > outcome.seq}
    error = outcome.error
    if isinstance(error, SidecarError) and error.kind in SESSION_ERRORS:
        sidecar_session.fail(context, error)
        _set_status(context, "No preview: the sidecar cannot be used (see above)")
        return
    if error is not None:
        _set_status(context, f"Preview failed: {error}")
        return
    result = outcome.result
    try:
        image = write_preview(result.png)
    except (ValueError, RuntimeError) as exc:
        _set_status(context, f"Preview failed: {exc}")
        return
    total = time.monotonic() - sent_at
    _state.last = PreviewDone(image, frame, result.seconds, total)
    show_in_image_editor(context, image)
    render = f"render {result.seconds:.2f} s, " if result.seconds is not None else ""
    _set_status(context, f"Frame {frame}: {image.size[0]} x {image.size[1]} px "
                         f"({render}total {total:.2f} s)")


def _live_render(context: Context) -> None:
    from gs_contract.camera import CameraConversionError

    from ..core.scenario_builder import ScenarioExportError

    try:
        request_preview(context)
    except (ScenarioExportError, CameraConversionError) as exc:
        _state.debounce.clear()
        _set_status(context, f"No preview: {exc}")


def _set_status(context: Context, text: str) -> None:
    settings = sidecar_session.sidecar_state(context)
    if settings is not None and settings.preview_status != text:
        settings.preview_status = text
    from .modal_job import tag_redraw

    tag_redraw(context)


# --------------------------------------------------------------------------- handlers


def relevant(id_types: Iterable[str]) -> bool:
    """Whether updates of these ID types (``ID.id_type``) change the rendered frame."""
    return any(id_type in RELEVANT_ID_TYPES for id_type in id_types)


def _live_on() -> bool:
    wm = getattr(bpy.context, "window_manager", None)
    settings = getattr(wm, "gsds_sidecar", None)
    return bool(settings is not None and settings.live_preview)


@persistent
def on_depsgraph_update(scene: Any, depsgraph: Any) -> None:
    """``depsgraph_update_post``: the scene was edited; mark the live preview dirty."""
    if _state.gathering or not _live_on():
        return
    if relevant(update.id.id_type for update in depsgraph.updates):
        debouncer().mark()


@persistent
def on_frame_change(scene: Any, depsgraph: Any = None) -> None:
    """``frame_change_post``: another frame is shown; mark the live preview dirty."""
    if _state.gathering or not _live_on():
        return
    debouncer().mark()


def live_toggled(context: Context, enabled: bool) -> None:
    """Live Preview switched: on = connect if needed and render now-ish; off = forget."""
    if enabled:
        sidecar_session.ensure(context)
        debouncer().mark()
        _ensure_timer()
    elif _state.debounce is not None:
        _state.debounce.clear()


# --------------------------------------------------------------------------- registration


def _timer() -> float:
    return tick(bpy.context)


def _ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL_S, persistent=True)


def reset() -> None:
    """Forget pending and shown previews (unregister; tests)."""
    global _state
    _state = _State()


def register() -> None:
    bpy.app.handlers.depsgraph_update_post.append(on_depsgraph_update)
    bpy.app.handlers.frame_change_post.append(on_frame_change)
    _ensure_timer()


def unregister() -> None:
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    for handlers, function in ((bpy.app.handlers.depsgraph_update_post, on_depsgraph_update),
                               (bpy.app.handlers.frame_change_post, on_frame_change)):
        if function in handlers:
            handlers.remove(function)
    reset()
