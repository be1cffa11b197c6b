"""``gsds.preview_frame``: the scene camera at the current frame, rendered by the sidecar
into ``bpy.data.images["GS Preview"]`` (a thin operator over :mod:`.live_preview`).

In the UI it returns at once: the request runs on a worker thread and the add-on's timer
shows the image when it arrives. Without a window (``blender -b``, the bpy module) no
timer fires, so it waits for the sidecar and the image before it returns.
"""

from __future__ import annotations

from typing import ClassVar

import bpy
from bpy.types import Context, Operator

from . import live_preview, sidecar_session

BLOCKING_TIMEOUT_S = 600.0
"""Background mode: the longest wait for a preview (the first one loads the assets)."""


class GSDS_OT_preview_frame(Operator):
    """Render the current frame through the camera with the splat renderer (the sidecar)
    into the image "GS Preview": exactly the image the dataset will hold"""

    bl_idname = "gsds.preview_frame"
    bl_label = "Preview Frame"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    @classmethod
    def poll(cls, context: Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "gsds")

    def execute(self, context: Context) -> set[str]:
        from gs_contract.camera import CameraConversionError

        from ..core.scenario_builder import ScenarioExportError

        try:
            live_preview.request_preview(context)
        except (ScenarioExportError, CameraConversionError) as exc:
            self.report({'ERROR'}, f"Preview not started: {exc}")
            return {'CANCELLED'}
        if not (bpy.app.background or context.window is None):
            return {'FINISHED'}
        return self._wait(context)

    def _wait(self, context: Context) -> set[str]:
        """Background mode: the sidecar ready, the preview sent, its result shown."""
        done = live_preview.wait_for_preview(context, BLOCKING_TIMEOUT_S)
        status = sidecar_session.sidecar_state(context).preview_status
        if done is None:
            current = sidecar_session.session()
            message = current.message if current is not None and current.phase == 'ERROR' \
                else status
            self.report({'ERROR'}, message or "No preview")
            return {'CANCELLED'}
        self.report({'INFO'}, status)
        return {'FINISHED'}


classes = (GSDS_OT_preview_frame,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
