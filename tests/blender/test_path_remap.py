"""``//`` source paths stay valid when the .blend is saved to another folder."""

from __future__ import annotations

from pathlib import Path

import bpy
from ply_factory import write_inria_ply


def proxy_with_relative_source(folder: Path):
    ply = folder / "assets" / "tool.ply"
    ply.parent.mkdir(parents=True)
    write_inria_ply(ply, n=10)
    assert bpy.ops.gsds.import_ply(filepath=str(ply)) == {'FINISHED'}
    obj = bpy.context.active_object
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "scene.blend"))
    obj.gsds.source_path = "//assets/tool.ply"
    return obj, ply


def resolved(obj) -> Path:
    return Path(bpy.path.abspath(obj.gsds.source_path)).resolve()


def test_save_as_elsewhere_keeps_the_source_reachable(addon, tmp_path):
    obj, ply = proxy_with_relative_source(tmp_path / "a")
    name = obj.name
    target = tmp_path / "b" / "deeper" / "moved.blend"
    target.parent.mkdir(parents=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(target))
    assert obj.gsds.source_path == "//../../a/assets/tool.ply"
    assert resolved(obj) == ply.resolve()
    bpy.ops.wm.open_mainfile(filepath=str(target))  # and so in the saved file
    assert resolved(bpy.data.objects[name]) == ply.resolve()


def test_save_copy_keeps_the_session_paths(addon, tmp_path):
    obj, ply = proxy_with_relative_source(tmp_path / "a")
    name = obj.name
    copy = tmp_path / "c" / "copy.blend"
    copy.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(copy), copy=True)
    assert obj.gsds.source_path == "//assets/tool.ply"  # the session is still on a/
    assert resolved(obj) == ply.resolve()
    bpy.ops.wm.open_mainfile(filepath=str(copy))
    assert resolved(bpy.data.objects[name]) == ply.resolve()


def test_saving_in_place_and_absolute_paths_are_left_alone(addon, tmp_path):
    obj, ply = proxy_with_relative_source(tmp_path / "a")
    bpy.ops.wm.save_mainfile()
    assert obj.gsds.source_path == "//assets/tool.ply"
    obj.gsds.source_path = str(ply)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "elsewhere.blend"))
    assert obj.gsds.source_path == str(ply)
