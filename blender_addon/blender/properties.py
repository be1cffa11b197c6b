"""The add-on's data: per-object settings (``Object.gsds``), per-scene settings
(``Scene.gsds``), the state of this session's render (``WindowManager.gsds_session``),
plus the two small operators that edit the scene's class list.

These names are the add-on's scripting surface (DESIGN.md, contract 6): scripts and the
exporter read ``obj.gsds.role``, ``obj.gsds.class_name``, ``obj.gsds.instance`` and
``scene.gsds.*``. The render
state lives on the window manager, whose properties Blender never saves: a .blend saved
mid-render does not open as "rendering".
"""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)
from bpy.types import Context, Object, Operator, PropertyGroup, Scene, WindowManager

ROLE_ITEMS = (
    ('NONE', "None", "Not part of the dataset", 0),
    ('BACKGROUND', "Background", "The scene splat: rendered behind and around the "
     "instruments, never labelled", 1),
    ('INSTRUMENT', "Instrument", "A labelled object: gets masks, boxes and a class", 2),
)
KEYFRAMES_DESCRIPTION = ("Only the frames holding a keyframe of the camera (object or lens), "
                         "the splat objects, their parents or constraint targets, or a "
                         "camera marker")
FRAMES_ITEMS = (
    ('ALL', "All Frames", "Every frame of the scene's frame range (by the frame step)", 0),
    ('KEYFRAMES', "Keyframes Only", KEYFRAMES_DESCRIPTION, 1),
)
YOLO_TASK_ITEMS = (
    ('DETECT', "Detect", "YOLO rows with boxes: class cx cy w h", 0),
    ('SEGMENT', "Segment", "YOLO rows with polygons", 1),
)
UPRIGHT_ITEMS = (  # the rotations themselves: proxy_mesh.UPRIGHT_ROTATIONS
    ('NONE', "None", "Keep the file's axes (z up)", 0),
    ('Y_DOWN', "Y Down (COLMAP / 3DGS)", "The file has y down and z forward (OpenCV, "
     "COLMAP and most 3DGS captures): rotate -90 degrees about X", 1),
    ('Y_UP', "Y Up (OpenGL / glTF)", "The file has y up and z toward the viewer: rotate "
     "+90 degrees about X", 2),
)
IMAGE_FORMAT_ITEMS = (
    ('PNG', "PNG", "Lossless images", 0),
    ('JPG', "JPEG", "Smaller, lossy images", 1),
)




def _blend_relative_path_options() -> set[str]:
    """Options of path properties that may hold ``//`` (blend-relative) paths.

    Blender 4.5+ warns when such a path is set on a property that did not opt in with
    ``PATH_SUPPORTS_BLEND_RELATIVE``; older versions refuse the unknown option when the
    property registers. The flag's RNA twin tells which kind of Blender this is.
    """
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties:
        return {'PATH_SUPPORTS_BLEND_RELATIVE'}
    return set()


BLEND_RELATIVE_PATH = _blend_relative_path_options()


# --------------------------------------------------------------------------- class list


def scene_class_names(scene: Scene) -> list[str]:
    """The scene's class names in order (class index = position)."""
    return [item.name for item in scene.gsds.classes]


def ensure_class(scene: Scene, name: str) -> int:
    """Index of ``name`` in the scene's class list, appending it when new (-1 for "")."""
    name = name.strip()
    if not name:
        return -1
    names = scene_class_names(scene)
    if name in names:
        return names.index(name)
    item = scene.gsds.classes.add()
    item.name = name
    return len(names)


def _class_name_search(self: GSDS_ObjectSettings, context: Context, edit_text: str):
    """Offer the scene's classes while typing; any other text is accepted too."""
    text = edit_text.strip().lower()
    return [name for name in scene_class_names(context.scene) if text in name.lower()]


def _class_name_update(self: GSDS_ObjectSettings, context: Context) -> None:
    """A class name typed in for an object joins the scene's class list."""
    scene = getattr(context, "scene", None)
    if scene is not None and self.class_name.strip():
        ensure_class(scene, self.class_name)


def _display_density_update(self: GSDS_ObjectSettings, context: Context) -> None:
    from . import proxy_mesh

    owner = self.id_data
    if isinstance(owner, Object):
        proxy_mesh.set_display_density(owner, self.display_density)


# ------------------------------------------------------------------------ property groups


class GSDS_ClassItem(PropertyGroup):
    """One entry of the scene's class list; its built-in ``name`` is the class name."""


class GSDS_ObjectSettings(PropertyGroup):
    """``Object.gsds``: the object's role in the dataset and where its Gaussians come from."""

    role: EnumProperty(
        name="Role", items=ROLE_ITEMS, default='NONE',
        description="What this object is in the rendered dataset",
    )
    class_name: StringProperty(
        name="Class",
        description="Class of this instrument; a new name joins the scene's class list",
        search=_class_name_search, search_options={'SUGGESTION', 'SORT'},
        update=_class_name_update,
    )
    instance: StringProperty(
        name="Instance",
        description="Parts of one instrument (shaft, jaws) share one instance name: they "
        "get one mask value, one box and one label, so they must share a class. Empty: "
        "this object is an instrument of its own",
    )
    source_origin: FloatVectorProperty(
        name="Source Origin", size=3, subtype='TRANSLATION',
        description="The point of the source file's coordinates at this proxy's origin "
        "(a part split off with its origin at its pivot); the mesh holds the Gaussian "
        "centres minus this point, and the export poses the file accordingly",
    )
    source_path: StringProperty(
        name="Source File", subtype='FILE_PATH', options=BLEND_RELATIVE_PATH,
        description="The Gaussian splat file this proxy was imported from",
    )
    gaussian_count: IntProperty(
        name="Gaussians", min=0, description="Rows (Gaussians) in the source file",
    )
    nonfinite_count: IntProperty(
        name="Non-finite Rows", min=0,
        description="Rows of the source file left out at import because a value is not "
        "finite (the renderer drops them too)",
    )
    sh_degree: IntProperty(
        name="SH Degree", min=0, max=3, description="Spherical-harmonics degree of the file",
    )
    source_format: StringProperty(
        name="Format", description="Format of the source file (inria_ply, compressed_ply, "
        "splat)",
    )
    display_density: FloatProperty(
        name="Display Density", min=0.0, max=1.0, default=1.0, subtype='FACTOR',
        description="Fraction of the points drawn in the viewport (display only: the mesh "
        "and the rendered dataset keep every Gaussian)",
        update=_display_density_update,
    )


class GSDS_SceneSettings(PropertyGroup):
    """``Scene.gsds``: the dataset to make from this scene."""

    classes: CollectionProperty(type=GSDS_ClassItem, name="Classes",
                                description="Class names; the class index is the position")
    active_class_index: IntProperty(name="Active Class", min=0)
    output_dir: StringProperty(
        name="Output Folder", subtype='DIR_PATH', default="//gs_dataset/",
        options=BLEND_RELATIVE_PATH,
        description="Folder the dataset is rendered into (// = next to the .blend file)",
    )
    overwrite: BoolProperty(
        name="Overwrite", default=False,
        description="Replace a dataset of a different scenario found in the output folder "
        "(a dataset of the same scenario is always resumed, keeping its finished frames)",
    )
    frames: EnumProperty(name="Frames", items=FRAMES_ITEMS, default='ALL',
                         description="Which frames of the scene become dataset images")
    yolo_task: EnumProperty(name="YOLO Labels", items=YOLO_TASK_ITEMS, default='DETECT',
                            description="Kind of YOLO label rows to write")
    coco: BoolProperty(name="COCO", default=True, description="Write COCO annotations")
    masks: BoolProperty(name="Masks", default=True,
                        description="Write visible-instance mask images")
    amodal: BoolProperty(name="Amodal", default=False,
                         description="Also write each instrument's full (unoccluded) mask")
    depth: BoolProperty(name="Depth", default=False, description="Write depth images")
    val_fraction: FloatProperty(
        name="Validation Fraction", min=0.0, max=1.0, default=0.2, subtype='FACTOR',
        description="Share of the frames put in the validation split",
    )
    image_format: EnumProperty(name="Image Format", items=IMAGE_FORMAT_ITEMS, default='PNG')


class GSDS_SessionState(PropertyGroup):
    """``WindowManager.gsds_session``: the dataset render of this Blender session
    (written by :mod:`.render_job`, drawn by the panels; never saved)."""

    is_rendering: BoolProperty(name="Rendering", default=False)
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, default=0.0, subtype='FACTOR')
    status: StringProperty(name="Status", description="What the render job is doing")
    last_summary: StringProperty(name="Last Render",
                                 description="Summary of the last finished render")


# ----------------------------------------------------------------------------- operators


class GSDS_OT_class_add(Operator):
    """Add a class to the scene's class list"""

    bl_idname = "gsds.class_add"
    bl_label = "Add Class"
    bl_options = {'REGISTER', 'UNDO'}  # noqa: RUF012 (Blender wants a set)

    name: StringProperty(name="Name", description="Class name (empty: a new unique name)")

    def execute(self, context: Context) -> set[str]:
        settings = context.scene.gsds
        name = self.name.strip()
        if not name:
            taken = set(scene_class_names(context.scene))
            number = len(taken) + 1
            while f"class_{number}" in taken:
                number += 1
            name = f"class_{number}"
        settings.active_class_index = ensure_class(context.scene, name)
        return {'FINISHED'}


class GSDS_OT_class_remove(Operator):
    """Remove the active class from the scene's class list"""

    bl_idname = "gsds.class_remove"
    bl_label = "Remove Class"
    bl_options = {'REGISTER', 'UNDO'}  # noqa: RUF012 (Blender wants a set)

    @classmethod
    def poll(cls, context: Context) -> bool:
        settings = context.scene.gsds
        return 0 <= settings.active_class_index < len(settings.classes)

    def execute(self, context: Context) -> set[str]:
        settings = context.scene.gsds
        index = settings.active_class_index
        name = settings.classes[index].name
        settings.classes.remove(index)
        settings.active_class_index = max(0, min(index, len(settings.classes) - 1))
        users = [o.name for o in context.scene.objects
                 if o.gsds.role == 'INSTRUMENT' and o.gsds.class_name == name]
        if users:
            self.report({'WARNING'}, f"Class {name!r} is still set on {', '.join(users)}")
        return {'FINISHED'}


classes = (
    GSDS_ClassItem,
    GSDS_ObjectSettings,
    GSDS_SceneSettings,
    GSDS_SessionState,
    GSDS_OT_class_add,
    GSDS_OT_class_remove,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    Object.gsds = PointerProperty(type=GSDS_ObjectSettings)
    Scene.gsds = PointerProperty(type=GSDS_SceneSettings)
    WindowManager.gsds_session = PointerProperty(type=GSDS_SessionState)


def unregister() -> None:
    del WindowManager.gsds_session
    del Scene.gsds
    del Object.gsds
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
