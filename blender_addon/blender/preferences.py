"""Add-on preferences: how to start the backend, and on which device it renders."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy.types import AddonPreferences, Context

# The add-on's own package (this module lives one level below it).
ADDON_PACKAGE = __package__.rpartition(".")[0]

DEVICE_ITEMS = (
    ('AUTO', "Auto", "CUDA when the backend finds a GPU, else the CPU", 0),
    ('CPU', "CPU", "Render on the CPU (slow, works everywhere)", 1),
    ('CUDA', "CUDA", "Render on the first CUDA GPU", 2),
)


class GSDS_Preferences(AddonPreferences):
    """Edit > Preferences > Add-ons > GS Dataset Studio."""

    # The add-on's module name: `bl_ext.<repo>.gs_dataset_studio` once installed as an
    # extension, `blender_addon` when the source folder is imported directly.
    bl_idname = ADDON_PACKAGE

    backend_command: StringProperty(
        name="Backend Command", default="gs-backend",
        description="A gs-backend executable (on PATH or a full path), or a Python "
        "interpreter that has the gs_backend package, e.g. /path/to/checkout/.venv/bin/python",
    )
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default='AUTO',
                         description="Where the backend renders")

    def draw(self, context: Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_command")
        layout.prop(self, "device")
        col = layout.column(align=True)
        col.label(text="The backend is a separate program (torch + gsplat) that renders the "
                  "dataset.", icon='INFO')
        col.label(text="Install it from the project's checkout (make setup), then point "
                  "this at .venv/bin/gs-backend.")


def get_preferences(context: Context | None = None) -> GSDS_Preferences | None:
    """The add-on's preferences, or None when it is not enabled as an add-on.

    None happens when a script registers the package directly
    (``import blender_addon; blender_addon.register()``) instead of enabling it: callers
    then fall back to the defaults of :class:`GSDS_Preferences`.
    """
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return None if addon is None else addon.preferences


classes = (GSDS_Preferences,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
