"""``gsds.split_part``: one capture becomes the parts of one instrument (DESIGN contract 7).

A grasper capture holds a shaft and a jaw. Splitting the jaw's vertices off gives two
proxies of the same file with complementary ``keep`` lists and one ``instance``; the jaw
rotates about its own origin (its pin), and the real backend (``.venv``) renders both
as one labelled instance. Poses are checked against the file's own coordinates (the
means written into the PLY), mapped by Blender's matrices, and the rendered mask
against Blender's own projection (``world_to_camera_view``).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import bmesh
import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector
from paths import BACKEND_PYTHON, REPO
from ply_factory import InriaColumns, write_inria_ply

from blender_addon.blender.operators_parts import GSDS_OT_split_part

SHAFT, JAW = 60, 40  # rows 0..59 are the shaft, 60..99 the jaw
WIDTH, HEIGHT = 96, 72


def grasper_columns() -> InriaColumns:
    """A shaft along x in [-0.9, 0.1] and a jaw along x in [0.3, 0.9], 0.2 apart."""
    rng = np.random.default_rng(7)
    n = SHAFT + JAW
    means = np.zeros((n, 3))
    means[:SHAFT, 0] = np.linspace(-0.9, 0.1, SHAFT)
    means[SHAFT:, 0] = np.linspace(0.3, 0.9, JAW)
    means[:, 1:] = rng.uniform(-0.03, 0.03, (n, 2))
    rots = np.zeros((n, 4))
    rots[:, 0] = 1.0
    return InriaColumns(means=means, f_dc=np.full((n, 3), 0.5), f_rest=np.zeros((n, 0)),
                        opacity_logits=np.full(n, 4.0), log_scales=np.full((n, 3),
                                                                            math.log(0.04)),
                        rots=rots, sh_degree=0)


@pytest.fixture
def grasper(addon, tmp_path):
    """The imported grasper capture (an instrument of class "grasper") and what the file
    holds; a camera looking straight down at it from 4 units."""
    scene = bpy.context.scene
    scene.frame_start = scene.frame_end = 1
    scene.render.resolution_x, scene.render.resolution_y = WIDTH, HEIGHT
    cols = write_inria_ply(tmp_path / "grasper.ply", grasper_columns())
    assert bpy.ops.gsds.import_ply(filepath=str(tmp_path / "grasper.ply")) == {'FINISHED'}
    obj = bpy.context.view_layer.objects.active
    obj.name = "grasper"
    obj.gsds.role = 'INSTRUMENT'
    obj.gsds.class_name = "grasper"
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.location = (0.0, 0.0, 4.0)
    scene.camera = camera
    return obj, cols


def gs_index(obj) -> np.ndarray:
    index = np.empty(len(obj.data.vertices), dtype=np.int32)
    obj.data.attributes["gs_index"].data.foreach_get("value", index)
    return index


def world_points(obj) -> np.ndarray:
    """The proxy's vertices in world coordinates ``[N, 3]`` (Blender's own matrices)."""
    co = np.empty(3 * len(obj.data.vertices), dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    bpy.context.view_layer.update()
    m = np.array(obj.matrix_world)
    return co.reshape(-1, 3).astype(np.float64) @ m[:3, :3].T + m[:3, 3]


def split_in_edit_mode(obj, rows: range, **options) -> bpy.types.Object:
    """Select the vertices of file ``rows`` in Edit Mode and split them off."""
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode='EDIT')
    bm = bmesh.from_edit_mesh(obj.data)
    layer = bm.verts.layers.int["gs_index"]
    for v in bm.verts:
        v.select_set(v[layer] in rows)
    bmesh.update_edit_mesh(obj.data)
    assert bpy.ops.gsds.split_part(**options) == {'FINISHED'}
    return bpy.context.view_layer.objects.active


def read_mask(path: Path) -> np.ndarray:
    """A uint16 mask PNG read by OpenCV in the backend's Python (Blender has no cv2)."""
    code = ("import cv2, json, sys; "
            "print(json.dumps(cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED).tolist()))")
    run = subprocess.run([str(BACKEND_PYTHON), "-c", code, str(path)], capture_output=True,
                         text=True, timeout=60, check=True)
    return np.array(json.loads(run.stdout))


def export(path: Path) -> dict:
    assert bpy.ops.gsds.export_scenario(filepath=str(path)) == {'FINISHED'}
    return json.loads(path.read_text())


def test_split_moves_the_selection_into_a_part_of_the_same_instance(grasper):
    obj, cols = grasper
    before = world_points(obj)
    part = split_in_edit_mode(obj, range(SHAFT, SHAFT + JAW))
    assert part is not obj and part.name == part.data.name == "grasper part"
    assert part.mode == 'OBJECT'
    assert obj.mode == 'OBJECT' and part.select_get() and not obj.select_get()
    assert sorted(gs_index(part)) == list(range(SHAFT, SHAFT + JAW))
    assert sorted(gs_index(obj)) == list(range(SHAFT))
    assert (part.gsds.role, part.gsds.class_name) == ('INSTRUMENT', "grasper")
    assert part.gsds.source_path == obj.gsds.source_path
    assert obj.gsds.instance == part.gsds.instance == "grasper"  # the original's name
    assert part.parent is obj
    # Nothing moved, and the part's origin is the selection's centre.
    np.testing.assert_allclose(world_points(obj), before[:SHAFT], atol=1e-6)
    np.testing.assert_allclose(world_points(part), before[SHAFT:], atol=1e-6)
    centre = cols.means[SHAFT:].mean(axis=0)
    np.testing.assert_allclose(np.array(part.matrix_world.translation), centre, atol=1e-5)
    assert 'UNDO' in GSDS_OT_split_part.bl_options


def test_cursor_pivot_and_an_existing_instance(grasper):
    obj, _ = grasper
    obj.gsds.instance = "tool"
    obj.location = (0.5, -0.25, 0.0)
    obj.rotation_euler = (0.0, 0.0, 0.4)
    bpy.context.scene.cursor.location = (1.0, 0.0, 0.2)
    flags = np.isin(gs_index(obj), np.arange(SHAFT, SHAFT + JAW))
    obj.data.vertices.foreach_set("select", flags)  # Object Mode: the stored selection
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.gsds.split_part(pivot='CURSOR', name="jaw") == {'FINISHED'}
    part = bpy.data.objects["jaw"]
    bpy.context.view_layer.update()
    np.testing.assert_allclose(np.array(part.matrix_world.translation), [1.0, 0.0, 0.2],
                               atol=1e-5)
    assert obj.gsds.instance == part.gsds.instance == "tool"


def test_split_refuses_an_empty_or_full_selection(grasper):
    obj, _ = grasper
    bpy.context.view_layer.objects.active = obj
    for flags in (np.zeros(SHAFT + JAW, bool), np.ones(SHAFT + JAW, bool)):
        obj.data.vertices.foreach_set("select", flags)
        with pytest.raises(RuntimeError, match=r"select the vertices|every vertex"):
            bpy.ops.gsds.split_part()
    assert len(obj.data.vertices) == SHAFT + JAW and len(bpy.data.objects) == 2
    bpy.ops.object.mode_set(mode='EDIT')
    bpy.ops.mesh.select_all(action='DESELECT')
    with pytest.raises(RuntimeError, match=r"select the vertices"):
        bpy.ops.gsds.split_part()
    assert obj.mode == 'EDIT'  # a refused split leaves the user where they were
    bpy.ops.object.mode_set(mode='OBJECT')


def test_posed_part_exports_complementary_keeps_and_the_files_pose(grasper, tmp_path):
    obj, cols = grasper
    obj.location = (0.1, 0.05, 0.0)
    part = split_in_edit_mode(obj, range(SHAFT, SHAFT + JAW))
    part.rotation_euler = (0.0, 0.0, math.radians(90))  # the jaw opens about its pin
    bpy.context.view_layer.update()
    data = export(tmp_path / "scenario.json")
    objects = data["objects"]
    assert set(objects) == {"grasper", "grasper part"}
    assert objects["grasper"]["instance"] == objects["grasper part"]["instance"] == "grasper"
    assets = {name: data["assets"][o["asset"]] for name, o in objects.items()}
    assert assets["grasper"]["ply"] == assets["grasper part"]["ply"] == "grasper.ply"
    assert assets["grasper"]["keep"] == list(range(SHAFT))
    assert assets["grasper part"]["keep"] == list(range(SHAFT, SHAFT + JAW))
    # Each exported pose maps the file's own coordinates to where Blender shows them.
    (frame,) = data["frames"]
    for name, rows in (("grasper", slice(0, SHAFT)), ("grasper part", slice(SHAFT, None))):
        pose = np.array(frame["poses"][name])
        mapped = cols.means[rows] @ pose[:3, :3].T + pose[:3, 3]
        shown = world_points(bpy.data.objects[name])
        order = np.argsort(gs_index(bpy.data.objects[name]))
        np.testing.assert_allclose(mapped, shown[order], atol=1e-5)


def test_the_backend_renders_the_parts_as_one_labelled_instance(grasper, tmp_path):
    if not BACKEND_PYTHON.is_file():
        pytest.skip("the backend venv (.venv) is missing")
    obj, _ = grasper
    part = split_in_edit_mode(obj, range(SHAFT, SHAFT + JAW))
    part.rotation_euler = (0.0, 0.0, math.radians(90))
    bpy.context.view_layer.update()
    bpy.context.scene.gsds.val_fraction = 0.0
    scenario = tmp_path / "scenario.json"
    export(scenario)
    out = tmp_path / "out"
    run = subprocess.run([str(BACKEND_PYTHON), "-m", "gs_backend", "render", str(scenario),
                          "--out", str(out), "--device", "cpu", "--progress", "none"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(i["id"], i["instance"], i["objects"]) for i in manifest["instruments"]] == [
        (1, "grasper", ["grasper", "grasper part"])]
    (frame,) = manifest["frames"]
    (inst,) = frame["instances"]
    assert inst["labelled"] and inst["objects"] == ["grasper", "grasper part"]
    rows = (out / frame["label"]).read_text().splitlines()
    assert len(rows) == 1 and rows[0].split()[0] == "0"
    coco = json.loads((out / "annotations" / "instances_train.json").read_text())
    assert len(coco["annotations"]) == 1
    mask = read_mask(out / frame["mask"])
    assert set(np.unique(mask).tolist()) == {0, 1}

    def mask_at(world: tuple[float, float, float]) -> int:
        scene = bpy.context.scene
        ndc = world_to_camera_view(scene, scene.camera, Vector(world))
        return int(mask[int((1.0 - ndc.y) * HEIGHT), int(ndc.x * WIDTH)])

    pin = np.array(part.matrix_world.translation)
    assert mask_at(tuple(np.add(pin, (0.0, 0.2, 0.0)))) == 1  # the jaw, turned to lie along y
    assert mask_at(tuple(np.add(pin, (0.35, 0.0, 0.0)))) == 0  # where its tip was before
    assert mask_at((-0.5, 0.0, 0.0)) == 1  # the shaft
