"""The sidecar of this Blender session: start or reach it, check it, say how it is.

One :class:`SidecarSession` at a time (module state, never saved), made from the add-on
preferences: ``LOCAL`` starts ``gs-backend serve`` from the Backend Command
(:class:`..core.sidecar_process.LocalSidecar`); ``REMOTE`` connects to a URL with a token
file (e.g. a GPU workstation through an SSH tunnel). Either way the client then checks
health, API version and token (:meth:`..core.sidecar_client.SidecarClient.check`) on a
worker thread. Nothing here blocks the UI: :func:`step` advances the session and is
called by the add-on's timer (:mod:`.live_preview`), or directly by tests and by
:func:`wait_ready` in background mode.

What the panel shows lives on ``WindowManager.gsds_sidecar`` (:class:`GSDS_SidecarState`):
the phase, one plain message (the sidecar is down, the token is wrong, the versions
differ, ...) and the preview settings; ``gsds.sidecar_connect`` (Connect / Retry) and
``gsds.sidecar_stop`` act on it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, PointerProperty, StringProperty
from bpy.types import Context, Operator, PropertyGroup, WindowManager

if TYPE_CHECKING:
    from gs_contract.sidecar import Health

    from ..core.sidecar_client import SidecarClient
    from ..core.sidecar_process import LocalSidecar
    from ..core.sidecar_schedule import LatestWins

PHASE_ITEMS = (
    ('OFF', "Off", "No sidecar in use", 0),
    ('STARTING', "Starting", "The local sidecar is starting", 1),
    ('CONNECTING', "Connecting", "Checking the sidecar (health, version, token)", 2),
    ('READY', "Ready", "The sidecar answers", 3),
    ('ERROR', "Error", "The sidecar cannot be used: see the message", 4),
)
READY_TIMEOUT_S = 180.0
"""Background mode: how long :func:`wait_ready` waits for a sidecar (start + check)."""

_session: SidecarSession | None = None
_overrides: dict[str, str] = {}  # connect()'s keywords, kept for Retry


class SidecarSession:
    """One attempt at a usable sidecar; ``phase`` / ``message`` say how far it got."""

    def __init__(self, mode: str, *, command: str = "", device: str = "AUTO",
                 url: str = "", token_file: str = "") -> None:
        self.mode = mode
        self.phase = 'STARTING'
        self.message = ""
        self.local: LocalSidecar | None = None
        self.client: SidecarClient | None = None
        self.health: Health | None = None
        self._checker: LatestWins[SidecarClient, Health] | None = None
        if mode == 'LOCAL':
            self._start_local(command, device)
        else:
            self._connect_remote(url, token_file)

    # --- phases -----------------------------------------------------------------------

    def _start_local(self, command: str, device: str) -> None:
        from ..core.backend_process import BackendError
        from ..core.sidecar_process import LocalSidecar

        try:
            self.local = LocalSidecar.start(command, device=device)
        except BackendError as exc:
            self.fail(f"Cannot start the local sidecar: {exc}")
            return
        self.message = "Starting the local sidecar (gs-backend serve)..."

    def _connect_remote(self, url: str, token_file: str) -> None:
        from ..core.sidecar_client import SidecarClient, SidecarError

        if not url.strip():
            self.fail("No sidecar URL: set one in the add-on preferences (Sidecar)")
            return
        try:
            client = SidecarClient.from_token_file(url.strip(),
                                                   bpy.path.abspath(token_file.strip()))
        except SidecarError as exc:
            self.fail(plain(exc))
            return
        self._check(client)

    def _check(self, client: SidecarClient) -> None:
        from ..core.sidecar_schedule import LatestWins

        self.client = client
        self.phase = 'CONNECTING'
        self.message = f"Connecting to {client.url}..."
        self._checker = LatestWins(lambda c: c.check())
        self._checker.submit(client)

    def step(self) -> None:
        """Advance without blocking: listening line read, check finished, process gone."""
        if self.phase == 'STARTING' and self.local is not None:
            from ..core.sidecar_client import SidecarClient, SidecarError

            if self.local.listening.is_set() and self.local.info is not None:
                info = self.local.info
                try:
                    self._check(SidecarClient.from_token_file(info.url, info.token_file))
                except SidecarError as exc:
                    self.fail(plain(exc))
            elif not self.local.running:
                self.fail(self.local.exit_message())
        elif self.phase == 'CONNECTING' and self._checker is not None:
            outcome = self._checker.collect()
            if outcome is not None:
                if outcome.error is not None:
                    self.fail(plain(outcome.error))
                else:
                    self.phase, self.health = 'READY', outcome.result
                    self.message = describe(self.client, self.health)
        if self.phase in ('READY', 'CONNECTING') and self.local is not None \
                and not self.local.running:
            self.fail(self.local.exit_message())

    def fail(self, message: str) -> None:
        """The sidecar cannot be used: one plain message for the panel."""
        self.phase = 'ERROR'
        self.message = message

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Block until READY or ERROR (scripts, background mode); True when READY."""
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            remaining = deadline - time.monotonic()
            if self.phase in ('READY', 'ERROR'):
                return self.phase == 'READY'
            if remaining <= 0:
                self.fail(f"The sidecar did not get ready within {timeout:g} s")
                return False
            if self.phase == 'STARTING' and self.local is not None:
                self.local.listening.wait(min(remaining, 0.2))
            elif self._checker is not None:  # step() collects its outcome
                self._checker.done.wait(min(remaining, 0.2))

    def stop(self) -> None:
        """Stop a local sidecar (its whole process group); forget the client."""
        local, self.local = self.local, None
        self.client = None
        if local is not None:
            local.stop()
        self.phase, self.message = 'OFF', ""


def plain(error: BaseException) -> str:
    """One sentence for the panel, starting with a capital letter."""
    text = str(error) or type(error).__name__
    return text[:1].upper() + text[1:]


def describe(client: SidecarClient | None, health: Health | None) -> str:
    """"Sidecar at URL: gs-backend V on DEVICE (RASTERIZER)"."""
    if client is None or health is None:
        return ""
    return (f"Sidecar at {client.url}: gs-backend {health.version} on {health.device} "
            f"({health.rasterizer})")


# --------------------------------------------------------------------------- module API


def session() -> SidecarSession | None:
    """The session's sidecar attempt, if any."""
    return _session


def ready_client() -> SidecarClient | None:
    """The client of a READY sidecar, else None (Render Dataset then runs as a child)."""
    return _session.client if _session is not None and _session.phase == 'READY' else None


def connect(context: Context | None = None, *, mode: str | None = None,
            url: str | None = None, token_file: str | None = None,
            backend_command: str | None = None) -> SidecarSession:
    """Start a new attempt (stopping a previous local sidecar). The preferences say how
    (defaults without them: a local sidecar); the keywords override them, for scripts:
    ``mode`` 'LOCAL' | 'REMOTE', ``url`` and ``token_file`` (remote),
    ``backend_command`` (local). Overrides stay in force for later attempts (Retry) of
    this session, until :func:`forget_overrides`."""
    global _session
    from .preferences import get_preferences
    from .render_job import render_settings

    given = {"mode": mode, "url": url, "token_file": token_file,
             "backend_command": backend_command}
    _overrides.update({key: value for key, value in given.items() if value is not None})
    mode, url, token_file, backend_command = (_overrides.get(key) for key in given)
    stop(context)
    prefs = get_preferences(context)
    mode = mode or (prefs.sidecar_mode if prefs is not None else 'LOCAL')
    if mode == 'REMOTE':
        _session = SidecarSession(
            'REMOTE', url=url if url is not None else getattr(prefs, "sidecar_url", ""),
            token_file=token_file if token_file is not None
            else getattr(prefs, "sidecar_token_file", ""))
    else:
        command, device = render_settings(context or bpy.context)
        _session = SidecarSession('LOCAL', device=device, command=command
                                  if backend_command is None else backend_command)
    sync(context)
    return _session


def forget_overrides() -> None:
    """Back to the preferences alone for the next :func:`connect`."""
    _overrides.clear()


def ensure(context: Context | None = None) -> SidecarSession:
    """The current attempt, or a new one when there is none or it failed."""
    if _session is None or _session.phase in ('OFF', 'ERROR'):
        return connect(context)
    return _session


def step(context: Context | None = None) -> None:
    """Advance the attempt (timer body) and mirror it on the window manager."""
    if _session is not None:
        _session.step()
        sync(context)


def fail(context: Context | None, error: BaseException) -> None:
    """A request found the sidecar unusable (down, token refused, other version)."""
    if _session is not None:
        _session.fail(plain(error))
        sync(context)


def stop(context: Context | None = None) -> None:
    """Stop the sidecar this session started (unregister, quit, Stop button)."""
    global _session
    current, _session = _session, None
    if current is not None:
        current.stop()
    sync(context)


def sync(context: Context | None = None) -> None:
    """Copy the phase and message onto ``WindowManager.gsds_sidecar``."""
    state = sidecar_state(context)
    if state is None:
        return
    phase = 'OFF' if _session is None else _session.phase
    message = "" if _session is None else _session.message
    if state.phase != phase:
        state.phase = phase
    if state.message != message:
        state.message = message


def sidecar_state(context: Context | None = None) -> Any:
    """``WindowManager.gsds_sidecar`` (None before registration)."""
    wm = getattr(context, "window_manager", None) or bpy.context.window_manager
    return getattr(wm, "gsds_sidecar", None)


# --------------------------------------------------------------------------- data


def _live_preview_changed(self: Any, context: Context) -> None:
    from . import live_preview

    live_preview.live_toggled(context, self.live_preview)


def _camera_view_changed(self: Any, context: Context) -> None:
    from . import preview_image

    preview_image.show_in_camera(context, self.preview_in_camera)


class GSDS_SidecarState(PropertyGroup):
    """``WindowManager.gsds_sidecar``: the sidecar and the preview of this session
    (never saved in a .blend)."""

    phase: EnumProperty(name="Sidecar", items=PHASE_ITEMS, default='OFF')
    message: StringProperty(name="Sidecar Status")
    live_preview: BoolProperty(
        name="Live Preview", default=False, update=_live_preview_changed,
        description="Render the preview again whenever the frame or the scene changes")
    preview_overlay: BoolProperty(
        name="Labels", default=False,
        description="Draw the visible masks' outlines, boxes and class names on the preview")
    preview_scale: FloatProperty(
        name="Scale", min=0.1, max=1.0, default=1.0, subtype='FACTOR',
        description="Render the preview smaller (same camera) for speed; 1 = the exact "
        "dataset image")
    preview_in_camera: BoolProperty(
        name="Show in Camera View", default=False, update=_camera_view_changed,
        description="Show the preview as the scene camera's background image in the 3D "
        "viewport (look through the camera: Numpad 0)")
    preview_status: StringProperty(name="Preview Status")


class GSDS_OT_sidecar_connect(Operator):
    """Start the local sidecar, or connect to the one set in the preferences (again, after
    an error)"""

    bl_idname = "gsds.sidecar_connect"
    bl_label = "Connect Sidecar"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    def execute(self, context: Context) -> set[str]:
        current = connect(context)
        if bpy.app.background or context.window is None:
            current.wait_ready()
            sync(context)
        if current.phase == 'ERROR':
            self.report({'ERROR'}, current.message)
            return {'CANCELLED'}
        return {'FINISHED'}


class GSDS_OT_sidecar_stop(Operator):
    """Stop the sidecar this Blender started (a remote one is only disconnected)"""

    bl_idname = "gsds.sidecar_stop"
    bl_label = "Stop Sidecar"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    @classmethod
    def poll(cls, context: Context) -> bool:
        return _session is not None

    def execute(self, context: Context) -> set[str]:
        state = sidecar_state(context)
        if state is not None and state.live_preview:
            state.live_preview = False
        stop(context)
        return {'FINISHED'}


classes = (GSDS_SidecarState, GSDS_OT_sidecar_connect, GSDS_OT_sidecar_stop)


def _stop_quietly() -> None:
    """Stop the local sidecar without touching Blender data (quit, unregister)."""
    global _session
    current, _session = _session, None
    if current is not None:
        current.stop()


def register() -> None:
    import atexit

    for cls in classes:
        bpy.utils.register_class(cls)
    WindowManager.gsds_sidecar = PointerProperty(type=GSDS_SidecarState)
    atexit.register(_stop_quietly)


def unregister() -> None:
    import atexit

    atexit.unregister(_stop_quietly)
    _stop_quietly()
    forget_overrides()
    del WindowManager.gsds_sidecar
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
