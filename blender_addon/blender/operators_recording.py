"""``gsds.import_recording``: a tracked recording becomes keyed proxies and a camera
(File > Import > Tracked Recording).

The recording (``gs-recording`` v1) is replayed by ``gs_contract.recording.replay_file``,
the same code as ``gs-backend replay``, and the resulting scenario is built into the
current scene by :func:`.scenario_import.build_scene`, the same code as
``scripts/scenario_to_blend.py``. Frame mapping: image i (in time order, 0-based) is
keyed at scene frame ``frame_start + i``; the scene's frame rate becomes the images'
median rate (:func:`blender_addon.core.scenario_import.frame_rate`).
"""

from __future__ import annotations

import os
from typing import ClassVar

import bpy
from bpy.props import StringProperty
from bpy.types import Context, Operator
from bpy_extras.io_utils import ImportHelper


class GSDS_OT_import_recording(Operator, ImportHelper):
    """Import a tracked recording (gs-recording JSON): proxies of its scene, a camera, and
    a keyframe per recorded image from the tracked poses, ready to edit"""

    bl_idname = "gsds.import_recording"
    bl_label = "Import Tracked Recording"
    bl_options: ClassVar[set[str]] = {'REGISTER', 'UNDO'}

    filename_ext = ".json"
    filepath: StringProperty(name="File Path", subtype='FILE_PATH', maxlen=1024,
                             description="gs-recording file to import",
                             options={'HIDDEN', 'SKIP_SAVE'})
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})

    def execute(self, context: Context) -> set[str]:
        from gs_contract.errors import InputError
        from gs_contract.recording import replay_file
        from gs_contract.scenario import parse_scenario

        from ..core.scenario_import import ScenarioImportError, describe_rate, frame_rate
        from .scenario_import import build_scene

        if not self.filepath:
            self.report({'ERROR'}, "No file given: set filepath to a gs-recording file")
            return {'CANCELLED'}
        path = os.path.normpath(os.path.abspath(bpy.path.abspath(self.filepath)))
        try:  # every file is read and checked before the scene is touched
            replay = replay_file(path)
            scenario = parse_scenario(replay.scenario, path)
        except InputError as exc:
            self.report({'ERROR'}, exc.message)
            return {'CANCELLED'}
        rate = frame_rate(replay.image_times_s)
        try:
            imported = build_scene(context, scenario, first_frame=context.scene.frame_start,
                                   rate=rate, k_field="camera.K")
        except ScenarioImportError as exc:
            self.report({'ERROR'}, exc.located(path))
            return {'CANCELLED'}

        for selected in context.selected_objects:
            selected.select_set(False)
        for obj in (*imported.objects.values(), imported.camera):
            obj.select_set(True)
        context.view_layer.objects.active = imported.camera
        names = replay.image_names
        self.report({'INFO'}, (
            f"Imported {len(names)} frames ({imported.first_frame}-{imported.last_frame}: "
            f"{names[0]} ... {names[-1]}) of {len(imported.objects)} objects at "
            f"{describe_rate(rate)} from {os.path.basename(path)}"))
        renamed = imported.renamed()
        if renamed:
            self.report({'WARNING'}, "Names taken in this file, objects renamed (an export "
                        f"uses the new names): {renamed}")
        return {'FINISHED'}


def menu_func_import(self: Operator, context: Context) -> None:
    """File > Import entry."""
    self.layout.operator(GSDS_OT_import_recording.bl_idname,
                         text="Tracked Recording (.json)")


classes = (GSDS_OT_import_recording,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_func_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_func_import)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
