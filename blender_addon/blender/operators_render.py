"""``gsds.render_dataset`` and ``gsds.cancel_render``: thin operators over :mod:`.render_job`.

In the UI the render operator is modal with a timer, so Blender stays usable; without a
window (``blender -b``, the bpy module) it blocks until the backend is done
(:class:`.modal_job.BackendJobOperator`).
"""

from __future__ import annotations

from typing import ClassVar

import bpy
from bpy.props import BoolProperty
from bpy.types import Context, Operator

from . import render_job
from .modal_job import BackendJobOperator


class GSDS_OT_render_dataset(BackendJobOperator, Operator):
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

    job_label = "Render"

    @classmethod
    def poll(cls, context: Context) -> bool:
        return (context.scene is not None and hasattr(context.scene, "gsds")
                and render_job.active_job() is None)

    def start_job(self, context: Context) -> render_job.RenderJob:
        overwrite = self.overwrite or context.scene.gsds.overwrite
        return render_job.start_render_job(context, overwrite=overwrite, report=self.report)

    def start_errors(self) -> tuple[type[BaseException], ...]:
        from gs_contract.camera import CameraConversionError

        from ..core.backend_process import BackendError
        from ..core.scenario_builder import ScenarioExportError
        from ..core.sidecar_client import SidecarError

        return (ScenarioExportError, CameraConversionError, BackendError, SidecarError,
                OSError)

    def poll_job(self, context: Context, job: render_job.RenderJob) -> set[str]:
        return render_job.poll_render_job(context, job)

    def run_blocking(self, context: Context, job: render_job.RenderJob) -> set[str]:
        return render_job.run_render_job_blocking(context, job)


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
