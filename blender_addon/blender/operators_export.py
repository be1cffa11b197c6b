"""``gsds.export_scenario``: write the scene as a ``gs-scenario`` v1 file.

:func:`build_scene_scenario` (gather + build) and :func:`export_scenario_file` (+ write)
are the one path from a Blender scene to a scenario; the render operator and
``scripts/render_blend.py`` use them too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy.types import Context, Operator
from bpy_extras.io_utils import ExportHelper

from .properties import BLEND_RELATIVE_PATH
from .properties import FRAMES_ITEMS as SCENE_FRAMES_ITEMS

# The scene's choices, renumbered after SCENE (= whatever the scene is set to).
FRAMES_ITEMS = (
    ('SCENE', "Scene Setting", "Use the scene's GS Dataset frames setting", 0),
    *((key, name, description, number + 1)
      for key, name, description, number in SCENE_FRAMES_ITEMS),
)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_scenario_file` wrote."""

    path: Path
    frames: int
    objects: int
    seconds: float
    scenario: dict[str, Any]

    def text(self) -> str:
        return (f"Exported {self.frames} frames of {self.objects} objects to {self.path} "
                f"({self.seconds:.2f} s)")


def resolve_frames_mode(context: Context, frames: str | None) -> str:
    """'ALL' / 'KEYFRAMES'; None or 'SCENE' -> ``Scene.gsds.frames``."""
    if frames in (None, "", "SCENE"):
        return context.scene.gsds.frames
    if frames not in ("ALL", "KEYFRAMES"):
        raise ValueError(f"frames must be 'ALL' or 'KEYFRAMES', got {frames!r}")
    return frames


def scenario_path(filepath: str) -> Path:
    """Absolute scenario path (``//`` = next to the saved .blend); ``.json`` added if missing."""
    from ..core.scenario_builder import ScenarioExportError
    from .scene_gather import blend_abspath

    if not filepath.strip() or filepath.rstrip().endswith(("/", "\\")):
        raise ScenarioExportError(f"scenario path {filepath!r}: give a file name, e.g. "
                                  "//scenario.json")
    path = Path(blend_abspath(filepath, "scenario path"))
    return path if path.suffix.lower() == ".json" else path.with_name(path.name + ".json")


def build_scene_scenario(context: Context, path: str | os.PathLike[str],
                         frames: str | None = None) -> dict[str, Any]:
    """Read the scene and build the scenario dict for a file at ``path`` (absolute).

    Raises:
        ScenarioExportError: with a message naming the object, file or field.
    """
    from ..core.scenario_builder import build_scenario
    from .scene_gather import gather_scene

    gathered = gather_scene(context, resolve_frames_mode(context, frames))
    return build_scenario(gathered, Path(path).parent)


def export_scenario_file(context: Context, filepath: str,
                         frames: str | None = None) -> ExportResult:
    """Gather, build and write the scenario to ``filepath`` (atomically)."""
    from ..core.scenario_builder import write_scenario

    t0 = time.perf_counter()
    path = scenario_path(filepath)
    scenario = build_scene_scenario(context, path, frames)
    write_scenario(path, scenario)
    return ExportResult(path, len(scenario["frames"]), len(scenario["objects"]),
                        time.perf_counter() - t0, scenario)


class GSDS_OT_export_scenario(Operator, ExportHelper):
    """Export the splat objects, their poses and the camera of every frame as a
    gs-scenario file for the gs-backend renderer"""

    bl_idname = "gsds.export_scenario"
    bl_label = "Export GS Scenario"
    bl_options: ClassVar[set[str]] = {'REGISTER'}

    filename_ext = ".json"
    # ExportHelper's own filepath, plus the opt-in to "//" paths (no warning on 4.5+).
    filepath: StringProperty(name="File Path", subtype='FILE_PATH', maxlen=1024,
                             description="Scenario file to write (// = next to the .blend)",
                             options=BLEND_RELATIVE_PATH)
    filter_glob: StringProperty(default="*.json", options={'HIDDEN'})
    frames: EnumProperty(
        name="Frames", items=FRAMES_ITEMS, default='SCENE',
        description="Which frames to export",
    )

    @classmethod
    def poll(cls, context: Context) -> bool:
        return context.scene is not None and hasattr(context.scene, "gsds")

    def invoke(self, context: Context, event: Any) -> set[str]:
        if not self.filepath:
            from ..core.scenario_builder import ScenarioExportError
            from .scene_gather import blend_abspath

            try:
                folder = blend_abspath(context.scene.gsds.output_dir, "output folder")
                self.filepath = os.path.join(folder, "scenario.json")
            except ScenarioExportError:
                pass  # unsaved .blend: ExportHelper proposes a name
        return ExportHelper.invoke(self, context, event)

    def execute(self, context: Context) -> set[str]:
        from gs_contract.camera import CameraConversionError

        from ..core.scenario_builder import ScenarioExportError

        try:
            result = export_scenario_file(context, self.filepath, self.frames)
        except (ScenarioExportError, CameraConversionError) as exc:
            self.report({'ERROR'}, f"Export failed: {exc}")
            return {'CANCELLED'}
        except OSError as exc:
            self.report({'ERROR'}, f"Cannot write {self.filepath}: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, result.text())
        return {'FINISHED'}


def _menu_export(self: Any, context: Context) -> None:
    self.layout.operator(GSDS_OT_export_scenario.bl_idname, text="GS Dataset Scenario (.json)")


classes = (GSDS_OT_export_scenario,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
