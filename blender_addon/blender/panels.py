"""The sidebar (N panel) tab "GS Dataset" of the 3D viewport, and the status-bar progress.

Panels only draw: they read ``Object.gsds`` / ``Scene.gsds``, the render state of the
session (``WindowManager.gsds_session``) and call operators; nothing here changes data.
"""

from __future__ import annotations

import os

import bpy
from bpy.types import Context, Panel, UILayout, UIList

CATEGORY = "GS Dataset"


def image_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """The rendered image size in pixels: resolution x percentage, as Blender computes it."""
    from gs_contract.camera import CameraConversionError, render_size

    render = scene.render
    try:
        return render_size(render.resolution_x, render.resolution_y,
                           render.resolution_percentage)
    except CameraConversionError:  # an empty image: the export will say so
        return 0, 0


def draw_progress(layout: UILayout, session, *, ring: bool = False) -> None:
    """A progress bar for a running render (``UILayout.progress`` from Blender 4.0 on)."""
    percent = round(100.0 * session.progress)
    text = f"{session.status} ({percent}%)" if session.status else f"Rendering {percent}%"
    if hasattr(layout, "progress"):
        layout.progress(factor=session.progress, type='RING' if ring else 'BAR', text=text)
    else:
        layout.label(text=text, icon='RENDER_ANIMATION')


def instance_parts(scene: bpy.types.Scene, obj: bpy.types.Object) -> list[str]:
    """Names of the scene's instruments that form one instance with ``obj`` (itself
    included), sorted: those whose instance name (``gsds.instance``, or the object's
    own name when empty) is ``obj``'s."""
    def key(o: bpy.types.Object) -> str:
        return o.gsds.instance.strip() or o.name

    mine = key(obj)
    return sorted(o.name for o in scene.objects
                  if o.gsds.role == 'INSTRUMENT' and key(o) == mine)


class GSDS_UL_classes(UIList):
    """The scene's class list: index (= class id in the labels) and editable name."""

    bl_idname = "GSDS_UL_classes"

    def draw_item(self, context: Context, layout: UILayout, data, item, icon: int,
                  active_data, active_propname: str, index: int = 0, flt_flag: int = 0):
        row = layout.row(align=True)
        row.label(text=f"{index}")
        row.prop(item, "name", text="", emboss=False)


class _SidebarTab:
    """Mixin: a panel of the 3D viewport's sidebar tab, shown when there is a scene."""

    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = CATEGORY

    @classmethod
    def poll(cls, context: Context) -> bool:
        return context.scene is not None


class GSDS_PT_object(_SidebarTab, Panel):
    """Role, class and source of the active object."""

    bl_idname = "GSDS_PT_object"
    bl_label = "Splat Object"
    bl_order = 0

    @classmethod
    def poll(cls, context: Context) -> bool:
        return context.object is not None

    def draw(self, context: Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        from .proxy_mesh import is_proxy

        obj = context.object
        if not is_proxy(obj):
            layout.label(text=f"{obj.name} is not a Gaussian splat proxy", icon='INFO')
            layout.operator("gsds.import_ply", text="Import Gaussian Splat", icon='IMPORT')
            return
        settings = obj.gsds
        layout.prop(settings, "role")
        row = layout.row()
        row.active = settings.role == 'INSTRUMENT'
        row.prop(settings, "class_name", icon='BOOKMARKS')
        if settings.role == 'INSTRUMENT' and not settings.class_name.strip():
            layout.label(text="Set a class: instruments are labelled with it", icon='ERROR')
        if settings.role == 'INSTRUMENT':
            layout.prop(settings, "instance", icon='LINKED')
            parts = instance_parts(context.scene, obj)
            if len(parts) > 1:
                layout.label(text=f"One instance with {', '.join(parts)}", icon='INFO')
            if obj.mode == 'EDIT':
                layout.operator("gsds.split_part", icon='MOD_EXPLODE')

        box = layout.box()
        col = box.column(align=True)
        path = bpy.path.abspath(settings.source_path) if settings.source_path else ""
        col.label(text=os.path.basename(path) or "no source file", icon='FILE')
        if path and not os.path.isfile(path):
            col.label(text="Source file not found", icon='ERROR')
        vertices = len(obj.data.vertices)
        col.label(text=f"Gaussians: {settings.gaussian_count:,}")
        if settings.nonfinite_count:
            col.label(text=f"Non-finite, skipped: {settings.nonfinite_count:,}")
        if vertices != settings.gaussian_count - settings.nonfinite_count:
            col.label(text=f"Kept in this proxy: {vertices:,}")
        col.label(text=f"SH degree: {settings.sh_degree}")
        if settings.source_format:
            col.label(text=f"Format: {settings.source_format}")
        layout.prop(settings, "display_density", slider=True)


class GSDS_PT_extract(_SidebarTab, Panel):
    """Extract Instrument (a sub-panel of Splat Object): crop volumes, the operator,
    progress and the last summary."""

    bl_idname = "GSDS_PT_extract"
    bl_label = "Extract Instrument"
    bl_parent_id = "GSDS_PT_object"

    @classmethod
    def poll(cls, context: Context) -> bool:
        from .proxy_mesh import is_proxy

        return is_proxy(context.object)

    def draw(self, context: Context) -> None:
        from .extract_job import crop_empties

        layout = self.layout
        state = context.window_manager.gsds_extract
        if state.is_running:
            layout.label(text=state.status, icon='TIME')
            layout.operator("gsds.cancel_extract", text="Cancel", icon='CANCEL')
        else:
            volumes, _ = crop_empties(context)
            col = layout.column(align=True)
            for empty in volumes:
                row = col.row(align=True)
                row.label(text=empty.name, icon=EMPTY_ICONS[empty.empty_display_type])
                row.prop(empty, "gsds_crop", expand=True)
            if not volumes:
                col.label(text="Crop: select Cube, Sphere or Circle empties too", icon='INFO')
            row = layout.row(align=True)
            row.operator("gsds.extract_instrument", icon='MOD_MASK').auto = True
            if volumes:
                row.operator("gsds.extract_instrument", text="Crop Only").auto = False
            if state.status:
                layout.label(text=state.status)
        if state.last_summary:
            layout.box().label(text=state.last_summary, icon='INFO')


EMPTY_ICONS = {'CUBE': 'MESH_CUBE', 'SPHERE': 'MESH_UVSPHERE', 'CIRCLE': 'MESH_CYLINDER'}


class GSDS_PT_dataset(_SidebarTab, Panel):
    """Scene-level dataset settings: classes, output, frames, label kinds."""

    bl_idname = "GSDS_PT_dataset"
    bl_label = "Dataset"
    bl_order = 1

    def draw(self, context: Context) -> None:
        layout = self.layout
        scene = context.scene
        settings = scene.gsds

        layout.label(text="Classes")
        row = layout.row()
        row.template_list("GSDS_UL_classes", "", settings, "classes",
                          settings, "active_class_index", rows=3)
        buttons = row.column(align=True)
        buttons.operator("gsds.class_add", text="", icon='ADD')
        buttons.operator("gsds.class_remove", text="", icon='REMOVE')

        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(settings, "output_dir")
        layout.prop(settings, "overwrite")
        layout.prop(settings, "frames")
        width, height = image_size(scene)
        row = layout.row()
        row.label(text="Image Size")
        row.label(text=f"{width} x {height} px")

        col = layout.column(heading="Outputs")
        col.prop(settings, "yolo_task")
        col.prop(settings, "coco")
        col.prop(settings, "masks")
        col.prop(settings, "amodal")
        col.prop(settings, "depth")
        layout.prop(settings, "val_fraction", slider=True)
        layout.prop(settings, "image_format")


class GSDS_PT_render(_SidebarTab, Panel):
    """Export the scenario or render the dataset; progress while the backend runs."""

    bl_idname = "GSDS_PT_render"
    bl_label = "Export & Render"
    bl_order = 2

    def draw(self, context: Context) -> None:
        layout = self.layout
        session = context.window_manager.gsds_session
        if session.is_rendering:
            draw_progress(layout, session)
            layout.operator("gsds.cancel_render", text="Cancel", icon='CANCEL')
        else:
            row = layout.row()
            row.scale_y = 1.5
            row.operator("gsds.render_dataset", text="Render Dataset",
                         icon='RENDER_ANIMATION')
            layout.operator("gsds.export_scenario", text="Export Scenario...", icon='EXPORT')
            if context.window_manager.gsds_sidecar.phase == 'READY':
                layout.label(text="Renders through the sidecar", icon='LINKED')
            if session.status:
                layout.label(text=session.status)
        if session.last_summary:
            box = layout.box()
            for number, line in enumerate(session.last_summary.splitlines()):
                box.label(text=line, icon='INFO' if number == 0 else 'BLANK1')


SIDECAR_ICONS = {'OFF': 'UNLINKED', 'STARTING': 'TIME', 'CONNECTING': 'TIME',
                 'READY': 'LINKED', 'ERROR': 'ERROR'}


class GSDS_PT_preview(_SidebarTab, Panel):
    """The sidecar (status, Connect / Retry, Stop) and the splat-rendered preview of the
    current frame (Preview Frame, Live Preview)."""

    bl_idname = "GSDS_PT_preview"
    bl_label = "Preview"
    bl_order = 3

    def draw(self, context: Context) -> None:
        layout = self.layout
        state = context.window_manager.gsds_sidecar
        box = layout.box()
        row = box.row(align=True)
        row.label(text=state.message or "Sidecar not started", icon=SIDECAR_ICONS[state.phase])
        buttons = box.row(align=True)
        if state.phase in ('OFF', 'ERROR'):
            buttons.operator("gsds.sidecar_connect",
                             text="Retry" if state.phase == 'ERROR' else "Start Sidecar",
                             icon='FILE_REFRESH' if state.phase == 'ERROR' else 'PLAY')
        if state.phase != 'OFF':
            buttons.operator("gsds.sidecar_stop", text="Stop", icon='CANCEL')

        row = layout.row(align=True)
        row.scale_y = 1.3
        row.operator("gsds.preview_frame", text="Preview Frame", icon='RENDER_STILL')
        row.prop(state, "live_preview", toggle=True, icon='PLAY')
        col = layout.column(align=True)
        col.prop(state, "preview_scale", slider=True)
        col.prop(state, "preview_overlay")
        col.prop(state, "preview_in_camera")
        if state.preview_status:
            layout.label(text=state.preview_status, icon='IMAGE_DATA')


def draw_status_bar(self, context: Context) -> None:
    """Status-bar hook (appended to ``STATUSBAR_HT_header``): progress while rendering."""
    wm = getattr(context, "window_manager", None)
    session = getattr(wm, "gsds_session", None)
    if session is None or not session.is_rendering:
        return
    row = self.layout.row(align=True)
    draw_progress(row, session, ring=True)


classes = (GSDS_UL_classes, GSDS_PT_object, GSDS_PT_extract, GSDS_PT_dataset,
           GSDS_PT_render, GSDS_PT_preview)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.STATUSBAR_HT_header.append(draw_status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(draw_status_bar)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
