"""Add-on preferences: how to start the backend, on which device it renders, and which
sidecar (``gs-backend serve``) renders the previews."""

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
SIDECAR_MODE_ITEMS = (
    ('LOCAL', "Start Locally", "Start gs-backend serve from the Backend Command when a "
     "preview is asked for (stopped when Blender quits)", 0),
    ('REMOTE', "Connect to URL", "Use a sidecar that runs elsewhere, e.g. on a GPU "
     "workstation reached through an SSH tunnel", 1),
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
    sidecar_mode: EnumProperty(name="Sidecar", items=SIDECAR_MODE_ITEMS, default='LOCAL',
                               description="Where the preview sidecar (gs-backend serve) "
                               "runs")
    sidecar_url: StringProperty(
        name="URL", default="http://127.0.0.1:8765",
        description="The sidecar's address, as its listening line prints it (through an "
        "SSH tunnel: the local end, e.g. http://127.0.0.1:8765)")
    sidecar_token_file: StringProperty(
        name="Token File", subtype='FILE_PATH',
        description="A copy of the sidecar's token file (gs-backend serve --token-file), "
        "readable only by you")

    def draw(self, context: Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_command")
        layout.prop(self, "device")
        layout.prop(self, "sidecar_mode")
        if self.sidecar_mode == 'REMOTE':
            layout.prop(self, "sidecar_url")
            layout.prop(self, "sidecar_token_file")
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
