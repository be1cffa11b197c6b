"""``gsds.extract_instrument`` and ``gsds.cancel_extract``: thin operators over
:mod:`.extract_job`, plus the data they use: ``Object.gsds_crop`` (whether a crop empty
keeps or removes what is inside it) and ``WindowManager.gsds_extract`` (the session's
extraction state, never saved).

In the UI the extraction operator is modal with a timer, so Blender stays usable; without
a window (``blender -b``, the bpy module) it blocks until the backend is done. The
vertex deletion happens when the operator finishes: one undo step.
"""

from __future__ import annotations

from typing import ClassVar

import bpy
from bpy.props import BoolProperty, EnumProperty, PointerProperty, StringProperty
from bpy.types import Context, Object, Operator, PropertyGroup, WindowManager

from . import extract_job
from .modal_job import BackendJobOperator

CROP_MODE_ITEMS = (
    ('KEEP', "Keep", "Keep the Gaussians inside this volume (with several Keep volumes: "
     "inside any of them)", 0),
    ('REMOVE', "Remove", "Remove the Gaussians inside this volume", 1),
)


class GSDS_ExtractState(PropertyGroup):
    """``WindowManager.gsds_extract``: the instrument extraction of this session
    (written by :mod:`.extract_job`, drawn by the panels; never saved)."""

    is_running: BoolProperty(name="Extracting", default=False)
    proxy: StringProperty(name="Splat Object", description="The object being extracted")
    status: StringProperty(name="Status", description="What the extraction is doing")
    last_summary: StringProperty(name="Last Extraction",
                                 description="What the last extraction kept")


class GSDS_OT_extract_instrument(BackendJobOperator, Operator):
    """Find the instrument in the active splat object's capture with gs-backend extract
    (automatically, and inside the selected Cube, Sphere and Circle empties) and delete
    the other Gaussians from it (runs in the background; Esc stops it)"""

    bl_idname = "gsds.extract_instrument"
    bl_label = "Extract Instrument"
    # UNDO without REGISTER: the deletion is one undo step, and there is no redo panel
    # (redoing would start the backend again).
    bl_options: ClassVar[set[str]] = {'UNDO'}

    auto: BoolProperty(
        name="Automatic", default=True,
        description="Run the automatic extraction (after the crop volumes); off: crop only",
    )

    job_label = "Extraction"

    @classmethod
    def poll(cls, context: Context) -> bool:
        return (context.view_layer is not None and extract_job.active_run() is None
                and extract_job.active_proxy(context) is not None)

    def start_job(self, context: Context) -> extract_job.ExtractRun:
        return extract_job.start_extract(context, auto=self.auto, report=self.report)

    def start_errors(self) -> tuple[type[BaseException], ...]:
        from ..core.backend_process import BackendError
        from ..core.extract_job import ExtractError

        return (ExtractError, BackendError, OSError)

    def poll_job(self, context: Context, job: extract_job.ExtractRun) -> set[str]:
        return extract_job.poll_extract(context, job)

    def run_blocking(self, context: Context, job: extract_job.ExtractRun) -> set[str]:
        return extract_job.run_extract_blocking(context, job)


class GSDS_OT_cancel_extract(Operator):
    """Stop the running instrument extraction; the splat object stays unchanged"""

    bl_idname = "gsds.cancel_extract"
    bl_label = "Cancel Extraction"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    @classmethod
    def poll(cls, context: Context) -> bool:
        return extract_job.active_run() is not None

    def execute(self, context: Context) -> set[str]:
        run = extract_job.active_run()
        if run is None:
            return {'CANCELLED'}
        run.request_cancel()
        extract_job.extract_state(context).status = "Stopping the extraction..."
        return {'FINISHED'}


classes = (GSDS_ExtractState, GSDS_OT_extract_instrument, GSDS_OT_cancel_extract)


def register() -> None:
    import atexit

    for cls in classes:
        bpy.utils.register_class(cls)
    WindowManager.gsds_extract = PointerProperty(type=GSDS_ExtractState)
    Object.gsds_crop = EnumProperty(
        name="Crop", items=CROP_MODE_ITEMS, default='KEEP',
        description="For Extract Instrument, when this empty (Cube, Sphere or Circle) is "
        "selected: keep or remove the Gaussians inside it")
    atexit.register(extract_job.stop_active_run)


def unregister() -> None:
    import atexit

    atexit.unregister(extract_job.stop_active_run)
    extract_job.stop_active_run()
    del Object.gsds_crop
    del WindowManager.gsds_extract
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
