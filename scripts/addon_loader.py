"""What the Blender-side scripts share: their arguments and the add-on package.

``render_blend.py`` and ``scenario_to_blend.py`` run with the bpy module
(``python script.py ...``) or inside Blender (``blender -b --python script.py -- ...``).
Either way they use the GS Dataset Studio add-on: the installed extension when it is
enabled, else the ``blender_addon`` folder of this checkout, registered for the run and
unregistered again by :func:`release_addon` (the bpy module of Blender 4.2 crashes at
exit while an add-on's preferences class is still registered). ``gs_contract`` comes from
the extension's bundled wheel when Blender has it on ``sys.path``, else from this checkout.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import bpy

REPO = Path(__file__).resolve().parents[1]
_REGISTERED_HERE: list[ModuleType] = []
if importlib.util.find_spec("gs_contract") is None:
    sys.path.append(str(REPO))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def script_argv() -> list[str]:
    """The script's own arguments: after ``--`` under Blender, else the command line's."""
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    # Inside the Blender executable sys.argv is Blender's own command line.
    return [] if bpy.app.binary_path else sys.argv[1:]


def addon_package() -> ModuleType:
    """The GS Dataset Studio package: the installed extension when it is enabled, else the
    ``blender_addon`` folder of this checkout, registered here."""
    if not hasattr(bpy.types.Object, "gsds") and not bpy.app.binary_path:
        # The bpy module starts on factory settings; load the user's preferences (and so
        # their enabled extensions and the backend preference) as `blender -b` does.
        if bpy.app.version >= (4, 3, 0):
            bpy.ops.wm.read_userpref()
        else:  # the bpy 4.2 module crashes in read_userpref (the blender binary does not)
            log("bpy 4.2 module: your Blender preferences are not read (pass --backend)")
    if hasattr(bpy.types.Object, "gsds"):
        for name, module in sorted(sys.modules.items()):
            if name.rpartition(".")[2] in ("gs_dataset_studio", "blender_addon") \
                    and hasattr(module, "__path__"):
                log(f"using the add-on {name} ({Path(module.__file__).parent})")
                return module
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    package = importlib.import_module("blender_addon")
    if not hasattr(bpy.types.Object, "gsds"):
        package.register()
        _REGISTERED_HERE.append(package)
        log(f"registered the add-on from {REPO / 'blender_addon'}")
    return package


def addon_module(package: ModuleType, name: str) -> ModuleType:
    """A module of the add-on package, e.g. ``core.camera_intrinsics``."""
    return importlib.import_module(f"{package.__name__}.{name}")


def release_addon() -> None:
    """Unregister what :func:`addon_package` registered."""
    while _REGISTERED_HERE:
        _REGISTERED_HERE.pop().unregister()
