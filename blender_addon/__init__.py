"""GS Dataset Studio: labelled training images from Gaussian splats, designed in Blender.

Blender side of the project (the extension ``gs_dataset_studio``). It imports splat
files as point proxies, stores roles and classes on objects, exports the scene as a
``gs-scenario`` file and runs the separate ``gs-backend`` renderer as a child process.
It uses only what Blender ships (bpy, mathutils, bpy_extras, numpy, the standard
library).

Layout: ``core/`` holds the pure modules (no bpy: the backend process, the scenario
builder, the camera conversion), ``blender/`` the modules that use bpy, one concern each:

* ``preferences``: add-on preferences (backend command, device).
* ``properties``: ``Object.gsds`` and ``Scene.gsds`` (the scripting surface), and
  ``WindowManager.gsds_session`` (the render state, never saved).
* ``proxy_mesh``, ``operators_import``: ``gsds.import_ply`` (files read by
  ``gs_contract.splats``).
* ``operators_export``: ``gsds.export_scenario``.
* ``operators_recording``: ``gsds.import_recording`` (a tracked recording, keyed through
  ``scenario_import``, the code ``scripts/scenario_to_blend.py`` uses too).
* ``operators_parts``: ``gsds.split_part`` (a proxy's selected vertices become a part
  object of the same instrument instance).
* ``render_job`` (with ``core.render_job``): the session's dataset render;
  ``operators_render``: ``gsds.render_dataset``, ``gsds.cancel_render``.
* ``extract_job`` (with ``core.extract_job``): the session's instrument extraction;
  ``operators_extract``: ``gsds.extract_instrument``, ``gsds.cancel_extract``.
* ``sidecar_session``: the sidecar (``gs-backend serve``) of this session, started locally
  or reached at a URL (``core.sidecar_client``, ``core.sidecar_process``);
  ``WindowManager.gsds_sidecar``; ``gsds.sidecar_connect``, ``gsds.sidecar_stop``.
* ``live_preview`` (with ``core.sidecar_schedule``), ``preview_image``,
  ``operators_preview``: ``gsds.preview_frame`` and Live Preview into the image
  "GS Preview".
* ``panels``: the "GS Dataset" tab of the 3D viewport's sidebar.
* ``path_remap``: keeps ``//`` source paths valid when the .blend is saved elsewhere.

Scripts may also use the source folder directly::

    import blender_addon
    blender_addon.register()
"""

from __future__ import annotations

from .blender import (
    live_preview,
    operators_export,
    operators_extract,
    operators_import,
    operators_parts,
    operators_preview,
    operators_recording,
    operators_render,
    panels,
    path_remap,
    preferences,
    properties,
    sidecar_session,
)

# Registration order: data first, then the operators using it, then the UI drawing both.
_MODULES = (preferences, properties, sidecar_session, path_remap, operators_import,
            operators_export, operators_parts, operators_recording, operators_render,
            operators_extract, operators_preview, live_preview, panels)


def register() -> None:
    """Register every module in order; on a failure, undo what was done and re-raise."""
    done = []
    try:
        for module in _MODULES:
            module.register()
            done.append(module)
    except Exception:
        for module in reversed(done):
            module.unregister()
        raise


def unregister() -> None:
    """Unregister every module in reverse order."""
    for module in reversed(_MODULES):
        module.unregister()
