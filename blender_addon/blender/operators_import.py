"""``gsds.import_ply``: import Gaussian splat files as point proxies (File > Import)."""

from __future__ import annotations

import os

import bpy
from bpy.props import (
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    StringProperty,
)
from bpy.types import Context, Operator, OperatorFileListElement
from bpy_extras.io_utils import ImportHelper

from .properties import BLEND_RELATIVE_PATH, ROLE_ITEMS, UPRIGHT_ITEMS


class GSDS_OT_import_ply(Operator, ImportHelper):
    """Import Gaussian splat files (Inria 3DGS PLY, SuperSplat compressed PLY, .splat,
    .spz) as point proxies, one vertex per Gaussian"""

    bl_idname = "gsds.import_ply"
    bl_label = "Import Gaussian Splat"
    bl_options = {'REGISTER', 'UNDO', 'PRESET'}  # noqa: RUF012 (Blender wants a set)

    filename_ext = ".ply"
    # ImportHelper's own filepath, plus the opt-in to "//" paths (no warning on 4.5+).
    filepath: StringProperty(name="File Path", subtype='FILE_PATH', maxlen=1024,
                             description="Gaussian splat file to import",
                             options={'HIDDEN', 'SKIP_PRESET', *BLEND_RELATIVE_PATH})
    filter_glob: StringProperty(default="*.ply;*.splat;*.spz", options={'HIDDEN'})
    files: CollectionProperty(type=OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})

    upright: EnumProperty(
        name="Upright", items=UPRIGHT_ITEMS, default='NONE',
        description="Stand the splat upright through the object's rotation (the vertex "
        "data always keeps the file's coordinates)",
    )
    role: EnumProperty(name="Role", items=ROLE_ITEMS, default='NONE',
                       description="Role of the imported objects in the dataset")
    class_name: StringProperty(name="Class",
                               description="Class of the imported instruments (optional)")
    display_density: FloatProperty(
        name="Display Density", min=0.0, max=1.0, default=1.0, subtype='FACTOR',
        description="Share of the points drawn in the viewport (display only)",
    )
    point_size: FloatProperty(
        name="Point Size", min=0.0, max=100.0, default=1.0,
        description="Point radius in units of each Gaussian's largest standard deviation",
    )

    def file_paths(self) -> list[str]:
        """Absolute paths of the files to import (several when picked in the browser)."""
        names = [f.name for f in self.files if f.name]
        if self.directory and names:
            paths = [os.path.join(self.directory, name) for name in names]
        elif self.filepath:
            paths = [self.filepath]
        else:
            return []
        return [os.path.normpath(os.path.abspath(bpy.path.abspath(p))) for p in paths]

    def execute(self, context: Context) -> set[str]:
        from gs_contract.errors import InputError
        from gs_contract.splats import read_splat_file

        from . import proxy_mesh

        paths = self.file_paths()
        if not paths:
            self.report({'ERROR'}, "No file given: set filepath to a Gaussian splat file")
            return {'CANCELLED'}
        splats = []
        for path in paths:  # read everything first: a bad file imports nothing
            try:
                splat = read_splat_file(path, dc_only=True)
            except InputError as exc:
                self.report({'ERROR'}, exc.message)
                return {'CANCELLED'}
            if splat.count == 0:
                self.report({'ERROR'}, f"{path}: the file holds no Gaussians")
                return {'CANCELLED'}
            splats.append(splat)

        collection = context.collection or context.scene.collection
        for selected in context.selected_objects:
            selected.select_set(False)
        for splat in splats:
            name = os.path.splitext(os.path.basename(splat.path))[0]
            obj, arrays = proxy_mesh.create_proxy_object(
                splat, name, collection, upright=self.upright,
                display_density=self.display_density, point_size=self.point_size)
            obj.gsds.role = self.role
            if self.class_name.strip():
                obj.gsds.class_name = self.class_name.strip()
            obj.select_set(True)
            context.view_layer.objects.active = obj
            message = (f"Imported {arrays.index.size:,} Gaussians (SH degree "
                       f"{splat.sh_degree}) from {os.path.basename(splat.path)} as "
                       f"{obj.name!r}")
            self.report({'INFO'}, message)
            if arrays.skipped:
                self.report({'WARNING'}, f"{splat.path}: skipped {arrays.skipped:,} of "
                            f"{splat.count:,} Gaussians with non-finite values or a zero "
                            "quaternion")
        return {'FINISHED'}

    def draw(self, context: Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(self, "upright")
        layout.prop(self, "role")
        if self.role == 'INSTRUMENT':
            layout.prop(self, "class_name")
        layout.prop(self, "display_density")
        layout.prop(self, "point_size")


def menu_func_import(self, context: Context) -> None:
    """File > Import entry."""
    self.layout.operator(GSDS_OT_import_ply.bl_idname, text="Gaussian Splat (.ply, .splat, .spz)")


classes = (GSDS_OT_import_ply,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_func_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_func_import)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
