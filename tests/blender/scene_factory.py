"""A small scene to render in the Blender-side tests: a background splat, a keyed
instrument and a camera looking down at them."""

from __future__ import annotations

from pathlib import Path

import bpy
from ply_factory import write_inria_ply


def build_small_scene(assets: Path, *, frame_end: int, class_name: str, gaussians: int,
                      end_location: tuple[float, float, float],
                      camera: bool = True) -> bpy.types.Scene:
    """Fill the current scene: ``tissue`` (background) and ``driver`` (instrument of
    ``class_name``, keyed at frames 1 and 4, from (0, 0, 2) to ``end_location``), each of
    ``gaussians`` random Gaussians written to ``assets`` unless already there; frames 1 to
    ``frame_end`` at 64 x 48; a camera at (0, 0, 5) looking down -z when ``camera``."""
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, frame_end
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    for name, role, seed in (("tissue", 'BACKGROUND', 1), ("driver", 'INSTRUMENT', 2)):
        ply = assets / f"{name}.ply"
        if not ply.exists():
            write_inria_ply(ply, n=gaussians, seed=seed)
        bpy.ops.gsds.import_ply(filepath=str(ply), role=role,
                                class_name=class_name if role == 'INSTRUMENT' else "")
    driver = bpy.data.objects["driver"]
    driver.scale = (0.3, 0.3, 0.3)
    driver.location = (0.0, 0.0, 2.0)
    driver.keyframe_insert("location", frame=1)
    driver.location = end_location
    driver.keyframe_insert("location", frame=4)
    if camera:
        cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        scene.collection.objects.link(cam)
        cam.location = (0.0, 0.0, 5.0)
        scene.camera = cam
    return scene
