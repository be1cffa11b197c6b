"""One way for an operator to run a backend child process (render, extract).

In the UI the operator is modal with a timer, so Blender stays usable (Esc cancels);
without a window (``blender -b``, the bpy module) nothing would deliver timer events, so it
blocks until the backend is done. The job itself (start, poll, blocking loop) lives in a
module with plain functions that tests call (:mod:`.render_job`, :mod:`.extract_job`);
an operator names them and this mixin does the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import bpy
from bpy.types import Context

TIMER_INTERVAL_S = 0.2
# Receives ({'INFO'|'WARNING'|'ERROR'}, message), e.g. an operator's ``report``.
Report = Callable[[set[str], str], None]


class SessionJob:
    """Mixin for a job of this Blender session (a dataclass with ``process``, a
    ``BackendJob``; ``report``, a :data:`Report` or None; ``reports``, every message)."""

    process: Any
    report: Report | None
    reports: list[tuple[str, str]]

    def emit(self, level: str, message: str) -> None:
        """Keep ``message`` and pass it to ``report`` when there is one."""
        self.reports.append((level, message))
        if self.report is not None:
            self.report({level}, message)

    def request_cancel(self) -> None:
        """Ask the backend to stop (non-blocking; keep polling)."""
        self.process.request_cancel()


class BackendJobOperator:
    """Mixin for an ``Operator`` that runs one backend job.

    Subclasses set ``job_label`` ("Render", "Extraction") and define :meth:`start_job`,
    :meth:`start_errors`, :meth:`poll_job` and :meth:`run_blocking`. A job has
    ``request_cancel()`` and ``process`` (a ``BackendJob``).
    """

    job_label: ClassVar[str] = "Job"
    _job: Any = None  # the job of this invocation
    _timer: Any = None

    def start_job(self, context: Context) -> Any:
        raise NotImplementedError

    def start_errors(self) -> tuple[type[BaseException], ...]:
        """The exceptions :meth:`start_job` raises for a job that cannot start."""
        raise NotImplementedError

    def poll_job(self, context: Context, job: Any) -> set[str]:
        raise NotImplementedError

    def run_blocking(self, context: Context, job: Any) -> set[str]:
        raise NotImplementedError

    def execute(self, context: Context) -> set[str]:
        try:
            self._job = self.start_job(context)
        except self.start_errors() as exc:
            self.report({'ERROR'}, f"{self.job_label} not started: {exc}")
            return {'CANCELLED'}
        if bpy.app.background or context.window is None:
            return self.run_blocking(context, self._job)
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
        result = self.poll_job(context, job)
        if 'RUNNING_MODAL' not in result:
            self._remove_timer(context)
        return result

    def cancel(self, context: Context) -> None:
        """Blender ends the operator (file loaded, window closed): stop the backend."""
        job = self._job
        if job is not None and not job.process.state.finished:
            job.process.cancel(interrupt_grace=5.0)
            self.poll_job(context, job)
        self._remove_timer(context)

    def _remove_timer(self, context: Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None


def tag_redraw(context: Context) -> None:
    """Redraw every area of every window (there are none under the bpy module)."""
    for window in getattr(context.window_manager, "windows", ()):
        for area in window.screen.areas:
            area.tag_redraw()
