"""``gsds.split_part``: split the selected vertices of a splat proxy into a part object.

An articulated instrument (a shaft and jaws rotating about a pin) comes from one
capture. Splitting moves the selected proxy vertices, and so the Gaussians they stand
for (their ``gs_index`` values go with them), into a new proxy of the same source file;
the export then writes a complementary ``keep`` list for each. Both objects get the
same ``Object.gsds.instance`` (the original's name when it had none), so the renderer
labels them as one instrument (DESIGN contract 7).

The part:

- is a copy of the original object (role, class, source file, display settings),
  holding only the selected vertices, and named "<original> part" (Blender adds a
  suffix when taken);
- is parented to the original, so it follows the original's motion, with no animation
  of its own; its origin lies at the pivot: the centre (mean) of the selected vertices,
  or the 3D cursor. Rotating it (R) turns it about that point, e.g. a jaw about its pin;
- records where its origin lies in the source file's coordinates in
  ``gsds.source_origin``, so the exported pose still maps the file's coordinates to
  the world (:mod:`.scene_gather`).

Works in Edit Mode (the selected vertices) and in Object Mode (the vertices' stored
selection, e.g. set by a script). Ends in Object Mode with the part active. Undoable.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import EnumProperty, StringProperty
from bpy.types import Context, Object, Operator
from mathutils import Matrix, Vector

PIVOT_ITEMS = (
    ('SELECTION', "Selection Centre", "The part's origin at the mean of the selected "
     "vertices", 0),
    ('CURSOR', "3D Cursor", "The part's origin at the 3D cursor (place it on the pin "
     "first)", 1),
)


class SplitError(Exception):
    """The split cannot be done; the message says why, in the user's terms."""


def split_part(obj: Object, selected: np.ndarray, pivot: Vector, name: str = "") -> Object:
    """Move the vertices ``selected`` of proxy ``obj`` into a new part object.

    Args:
        obj: a splat proxy in Object Mode, with a mesh of its own (one user).
        selected: ``[N]`` bool, one per vertex of ``obj``'s mesh.
        pivot: the part's origin, in ``obj``'s local (mesh) coordinates.
        name: the part's name ("" = "<obj> part").

    Returns:
        The new part, linked into ``obj``'s collections and parented to ``obj``.

    Raises:
        SplitError: nothing or everything selected, or the mesh is shared.
    """
    mesh = obj.data
    count = int(selected.sum())
    if count == 0:
        raise SplitError("select the vertices of the part first (Edit Mode)")
    if count == len(mesh.vertices):
        raise SplitError("every vertex is selected: leave some for the rest of the "
                         "instrument")
    if mesh.users > 1:
        raise SplitError(f"the mesh of {obj.name!r} is shared by {mesh.users} objects: "
                         "make it single user first (Object > Relations > Make Single User)")

    part_mesh = mesh.copy()
    delete_vertices(part_mesh, ~selected)
    delete_vertices(mesh, selected)
    part_mesh.transform(Matrix.Translation(-pivot))

    part = obj.copy()  # role, class, source, display modifier
    part.data = part_mesh
    part.name = name.strip() or f"{obj.name} part"
    part_mesh.name = part.name
    part.animation_data_clear()  # it follows the original through its parent
    part.constraints.clear()
    for collection in obj.users_collection:
        collection.objects.link(part)
    part.parent = obj
    part.matrix_parent_inverse = Matrix.Identity(4)
    part.matrix_basis = Matrix.Translation(pivot)
    part.gsds.source_origin = Vector(obj.gsds.source_origin) + pivot
    if not obj.gsds.instance.strip():
        obj.gsds.instance = obj.name
    part.gsds.instance = obj.gsds.instance.strip()
    return part


def delete_vertices(mesh: bpy.types.Mesh, doomed: np.ndarray) -> None:
    """Remove the vertices flagged in ``doomed`` (``[N]`` bool) and what uses them; every
    attribute of the others (``gs_index`` included) is kept."""
    import bmesh

    bm = bmesh.new()
    try:
        bm.from_mesh(mesh)
        bm.verts.ensure_lookup_table()
        verts = bm.verts
        bmesh.ops.delete(bm, geom=[verts[i] for i in np.flatnonzero(doomed)],
                         context='VERTS')
        bm.to_mesh(mesh)
    finally:
        bm.free()
    mesh.update()


def selected_vertices(mesh: bpy.types.Mesh) -> np.ndarray:
    """``[N]`` bool: the vertices' selection flags (as last synced from Edit Mode)."""
    flags = np.zeros(len(mesh.vertices), dtype=bool)
    if len(flags):
        mesh.vertices.foreach_get("select", flags)
    return flags


class GSDS_OT_split_part(Operator):
    """Move the selected proxy vertices into a new part object of the same instrument
    (same source file, class and instance), with its origin at its pivot so it can be
    rotated on its own (e.g. a jaw about its pin)"""

    bl_idname = "gsds.split_part"
    bl_label = "Split Selected into Part"
    bl_options = {'REGISTER', 'UNDO'}  # noqa: RUF012 (Blender wants a set)

    pivot: EnumProperty(name="Pivot", items=PIVOT_ITEMS, default='SELECTION',
                        description="Where the part's origin goes: it rotates about it")
    name: StringProperty(name="Part Name", description="Name of the new part object "
                         "(empty: \"<object> part\")")

    @classmethod
    def poll(cls, context: Context) -> bool:
        from .proxy_mesh import is_proxy

        obj = context.active_object
        if not is_proxy(obj):
            cls.poll_message_set("The active object is not a Gaussian splat proxy")
            return False
        return True

    def execute(self, context: Context) -> set[str]:
        obj = context.active_object
        was_editing = obj.mode == 'EDIT'
        if was_editing:
            bpy.ops.object.mode_set(mode='OBJECT')  # writes the edit mesh back
        selected = selected_vertices(obj.data)
        if self.pivot == 'CURSOR':
            pivot = obj.matrix_world.inverted_safe() @ context.scene.cursor.location
        else:
            positions = np.empty(3 * len(selected), dtype=np.float32)
            obj.data.vertices.foreach_get("co", positions)
            mean = positions.reshape(-1, 3)[selected].astype(np.float64).mean(axis=0) \
                if selected.any() else np.zeros(3)
            pivot = Vector(mean.tolist())
        try:
            part = split_part(obj, selected, pivot, self.name)
        except SplitError as exc:
            if was_editing:
                bpy.ops.object.mode_set(mode='EDIT')
            self.report({'ERROR'}, str(exc))
            return {'CANCELLED'}
        for other in context.selected_objects:
            other.select_set(False)
        part.select_set(True)
        context.view_layer.objects.active = part
        self.report({'INFO'}, f"{part.name}: {len(part.data.vertices):,} Gaussians, part of "
                              f"instance {part.gsds.instance!r}")
        return {'FINISHED'}


def draw_edit_menu(self, context: Context) -> None:
    """Vertex menu entry (Edit Mode > Vertex): shown for splat proxies."""
    self.layout.separator()
    self.layout.operator(GSDS_OT_split_part.bl_idname, icon='MOD_EXPLODE')


classes = (GSDS_OT_split_part,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.VIEW3D_MT_edit_mesh_vertices.append(draw_edit_menu)


def unregister() -> None:
    bpy.types.VIEW3D_MT_edit_mesh_vertices.remove(draw_edit_menu)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
