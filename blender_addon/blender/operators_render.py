"""``gsds.render_dataset`` and ``gsds.cancel_render``: thin operators over :mod:`.render_job`.

In the UI the render operator is modal with a timer, so Blender stays usable; without a
window (``blender -b``, the bpy module) it blocks until the backend is done.
"""

from __future__ import annotations

from typing import Any, ClassVar

import bpy
from bpy.props import BoolProperty
from bpy.types import Context, Operator

from . import render_job

TIMER_INTERVAL_S = 0.2


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
                and render_job.active_job() is None)

    def execute(self, context: Context) -> set[str]:
        from gs_contract.camera import CameraConversionError

        from ..core.backend_process import BackendError
        from ..core.scenario_builder import ScenarioExportError

        overwrite = self.overwrite or context.scene.gsds.overwrite
        try:
            self._job = render_job.start_render_job(context, overwrite=overwrite,
                                                    report=self.report)
        except (ScenarioExportError, CameraConversionError, BackendError, OSError) as exc:
            self.report({'ERROR'}, f"Render not started: {exc}")
            return {'CANCELLED'}
        if bpy.app.background or context.window is None:
            # No event loop (blender -b, the bpy module): nothing would deliver timer events.
            return render_job.run_render_job_blocking(context, self._job)
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
        result = render_job.poll_render_job(context, job)
        if 'RUNNING_MODAL' not in result:
            self._remove_timer(context)
        return result

    def cancel(self, context: Context) -> None:
        """Blender ends the operator (file loaded, window closed): stop the backend."""
        if self._job is not None:
            self._job.process.cancel(interrupt_grace=5.0)
            render_job.poll_render_job(context, self._job)
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
        return render_job.active_job() is not None

    def execute(self, context: Context) -> set[str]:
        job = render_job.active_job()
        if job is None:
            return {'CANCELLED'}
        job.request_cancel()
        render_job.session_state(context).status = "Stopping (finishing the frames in flight)..."
        self.report({'INFO'}, "Stopping the dataset render...")
        return {'FINISHED'}


classes = (GSDS_OT_render_dataset, GSDS_OT_cancel_render)


def register() -> None:
    import atexit

    for cls in classes:
        bpy.utils.register_class(cls)
    atexit.register(render_job.stop_active_job)


def unregister() -> None:
    import atexit

    atexit.unregister(render_job.stop_active_job)
    render_job.stop_active_job()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
