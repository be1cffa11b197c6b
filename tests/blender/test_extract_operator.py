"""``gsds.extract_instrument`` end to end against ``fake_extract_backend.py``.

The fake implements the agreed ``gs-backend extract`` contract minimally (crop volumes on
the Gaussian centres, then a stand-in automatic stage removing rows ``i % 5 == 0``), so
each test is a real run of the operator against a child process. Timers never fire under
the bpy module: the tests call ``poll_extract``, as the modal operator's timer does.
The oracle for the crop volumes is written here in world space, from what the viewport
draws: a Cube empty spans -size..size on its local axes, a Sphere empty has radius size,
a Circle empty is drawn in its local XZ plane (the cylinder's axis is its local Y).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bmesh
import bpy
import numpy as np
import pytest
from fake_extract_backend import AUTO_MODULUS, RECORD_ENV
from paths import BACKEND_PYTHON
from scene_factory import build_small_scene

from blender_addon.blender import extract_job, operators_extract, panels, render_job
from blender_addon.blender.extract_job import poll_extract, start_extract
from blender_addon.core.extract_job import ExtractError

FAKE = Path(__file__).with_name("fake_extract_backend.py")
GAUSSIANS = 2000


def fake(mode: str = "ok") -> str:
    return shlex.join([sys.executable, str(FAKE), "--mode", mode])


@pytest.fixture
def record(tmp_path, monkeypatch):
    """The folder where the fake records its argv and crop file."""
    folder = tmp_path / "record"
    folder.mkdir()
    monkeypatch.setenv(RECORD_ENV, str(folder))
    return folder


@pytest.fixture
def proxy(addon, tmp_path, record):
    """``driver`` of the small scene, rotated and scaled (a non-identity pose), active."""
    build_small_scene(tmp_path, frame_end=1, class_name="needle_driver",
                      gaussians=GAUSSIANS, end_location=(0.0, 0.0, 2.0))
    driver = bpy.data.objects["driver"]
    driver.rotation_euler = (0.4, -0.3, 1.1)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    bpy.context.view_layer.objects.active = driver
    driver.select_set(True)
    bpy.context.view_layer.update()
    yield driver
    run = extract_job.active_run()
    if run is not None:  # a failed test must not leave a child running
        run.process.cancel(interrupt_grace=1.0)
        poll_extract(bpy.context, run)


def add_empty(name: str, display: str, location, rotation, scale, size: float,
              mode: str = 'KEEP') -> bpy.types.Object:
    empty = bpy.data.objects.new(name, None)
    empty.empty_display_type = display
    empty.empty_display_size = size
    empty.location, empty.rotation_euler, empty.scale = location, rotation, scale
    empty.gsds_crop = mode
    bpy.context.scene.collection.objects.link(empty)
    empty.select_set(True)
    bpy.context.view_layer.update()
    return empty


@pytest.fixture
def volumes(proxy):
    """A rotated, non-uniformly scaled box and cylinder to keep, a sphere inside the box
    to remove, and an Arrows empty (not a volume)."""
    box = add_empty("A box", 'CUBE', (0.05, 0.02, 2.0), (0.5, 0.2, 0.9), (1.0, 0.6, 1.8), 0.15)
    cylinder = add_empty("B cylinder", 'CIRCLE', (-0.15, -0.1, 1.9), (1.0, 0.0, 0.3),
                         (0.5, 2.0, 0.7), 0.12)
    sphere = add_empty("C sphere", 'SPHERE', (0.05, 0.02, 2.0), (0.3, 0.0, 0.0),
                       (0.5, 1.0, 1.2), 0.1, mode='REMOVE')
    add_empty("D arrows", 'ARROWS', (0.0, 0.0, 2.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0)
    bpy.context.view_layer.objects.active = proxy
    return [box, cylinder, sphere]


def session():
    return bpy.context.window_manager.gsds_extract


def proxy_rows(obj) -> np.ndarray:
    """``[M]`` gs_index of the proxy's vertices, and their positions ``[M, 3]``."""
    mesh = obj.data
    index = np.zeros(len(mesh.vertices), dtype=np.int32)
    mesh.attributes["gs_index"].data.foreach_get("value", index)
    return index.astype(np.int64)


def proxy_positions(obj) -> np.ndarray:
    co = np.zeros(3 * len(obj.data.vertices), dtype=np.float32)
    obj.data.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


def inside_drawn_empty(empty, world: np.ndarray) -> np.ndarray:
    """``[N]`` bool: world points inside the shape the viewport draws for ``empty``."""
    local_from_world = np.linalg.inv(np.array(empty.matrix_world))
    local = (world @ local_from_world[:3, :3].T + local_from_world[:3, 3])
    local /= empty.empty_display_size
    x, y, z = local.T
    if empty.empty_display_type == 'CUBE':
        return np.all(np.abs(local) <= 1.0, axis=1)
    if empty.empty_display_type == 'SPHERE':
        return x * x + y * y + z * z <= 1.0
    assert empty.empty_display_type == 'CIRCLE'
    return (x * x + z * z <= 1.0) & (np.abs(y) <= 1.0)  # circle in XZ, axis along Y


def expected_rows(obj, empties, auto: bool = True) -> np.ndarray:
    """The rows the extraction should leave in the proxy (sorted)."""
    index = proxy_rows(obj)
    world_from_ply = np.array(obj.matrix_world)
    world = proxy_positions(obj) @ world_from_ply[:3, :3].T + world_from_ply[:3, 3]
    keeps = [inside_drawn_empty(e, world) for e in empties if e.gsds_crop == 'KEEP']
    removes = [inside_drawn_empty(e, world) for e in empties if e.gsds_crop == 'REMOVE']
    for hit in keeps + removes:
        assert 0 < hit.sum() < len(hit), "each test volume holds some Gaussians, not all"
    ok = np.any(keeps, axis=0) if keeps else np.ones(len(index), dtype=bool)
    if removes:
        assert (ok & np.any(removes, axis=0)).any(), "the remove volume cuts a keep volume"
        ok &= ~np.any(removes, axis=0)
    if auto:
        ok &= index % AUTO_MODULUS != 0
    return np.sort(index[ok])


def run_to_end(run, timeout: float = 60.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = poll_extract(bpy.context, run)
        if 'RUNNING_MODAL' not in result:
            return result
        assert session().is_running and session().status.startswith("Extracting driver...")
        time.sleep(0.02)
    raise AssertionError("the extraction did not finish in time")


def export_keep(tmp_path) -> list[int] | None:
    path = tmp_path / "scenario.json"
    assert bpy.ops.gsds.export_scenario(filepath=str(path)) == {'FINISHED'}
    scenario = json.loads(path.read_text())
    return scenario["assets"][scenario["objects"]["driver"]["asset"]].get("keep")


# ----------------------------------------------------------------------------- success


def test_volumes_land_where_the_user_sees_them_and_export_writes_keep(volumes, record,
                                                                        tmp_path):
    proxy = bpy.data.objects["driver"]
    expected = expected_rows(proxy, volumes)
    run = start_extract(bpy.context, backend_command=fake())
    work_dir = run.process.work_dir
    assert session().is_running and extract_job.active_run() is run
    assert run.reports == [('INFO', "Not crop volumes (display type is not Cube, Sphere or "
                                    "Circle): D arrows")]
    assert run_to_end(run) == {'FINISHED'}

    np.testing.assert_array_equal(np.sort(proxy_rows(proxy)), expected)
    assert run.deleted == GAUSSIANS - expected.size
    argv = json.loads((record / "argv.json").read_text())
    capture = str(tmp_path / "driver.ply")
    assert argv[2:] == ["extract", capture, "--out", str(work_dir / "tool.ply"),
                        "--keep-out", str(work_dir / "keep.npy"), "--json",
                        "--crop", str(work_dir / "crop.json")]
    crop = json.loads((record / "crop.json").read_text())
    assert (crop["format"], crop["version"]) == ("gs-crop", 1)
    assert [(v["shape"], v["mode"]) for v in crop["volumes"]] == \
        [("box", "keep"), ("cylinder", "keep"), ("sphere", "remove")]
    assert not work_dir.exists(), "the temporary folder is removed"

    state = session()
    assert not state.is_running and extract_job.active_run() is None
    report_stages = run.process.report.stages
    assert [s.name for s in report_stages] == ["unusable", "crop", "auto.fake"]
    assert state.last_summary == (
        f"driver: kept {expected.size:,} of {GAUSSIANS:,} Gaussians (stages: unusable -0, "
        f"crop -{report_stages[1].removed:,}, auto.fake -{report_stages[2].removed:,})")
    assert state.status == f"Done: {GAUSSIANS - expected.size:,} proxy vertices deleted"
    assert run.reports[-1][0] == 'INFO' and "kept" in run.reports[-1][1]

    assert export_keep(tmp_path) == expected.tolist()


def test_vertices_deleted_by_hand_stay_deleted(volumes, tmp_path):
    proxy = bpy.data.objects["driver"]
    expected_full = expected_rows(proxy, volumes)
    bm = bmesh.new()
    bm.from_mesh(proxy.data)
    bm.verts.ensure_lookup_table()
    by_hand = [v for v in bm.verts if v.index % 3 == 0]  # rows 0, 3, 6, ... (import order)
    bmesh.ops.delete(bm, geom=by_hand, context='VERTS')
    bm.to_mesh(proxy.data)
    bm.free()
    before = set(proxy_rows(proxy).tolist())
    assert len(before) == GAUSSIANS - len(range(0, GAUSSIANS, 3))

    run = start_extract(bpy.context, backend_command=fake())
    assert run_to_end(run) == {'FINISHED'}
    expected = sorted(set(expected_full.tolist()) & before)
    assert sorted(proxy_rows(proxy).tolist()) == expected
    assert run.deleted == len(before) - len(expected)
    assert export_keep(tmp_path) == expected


def test_crop_only_skips_the_automatic_stage(volumes, record):
    proxy = bpy.data.objects["driver"]
    expected = expected_rows(proxy, volumes, auto=False)
    run = start_extract(bpy.context, auto=False, backend_command=fake())
    assert run_to_end(run) == {'FINISHED'}
    assert json.loads((record / "argv.json").read_text())[-1] == "--no-auto"
    np.testing.assert_array_equal(np.sort(proxy_rows(proxy)), expected)


def test_with_the_real_backend_crop_volumes_land_where_the_user_sees_them(volumes, tmp_path):
    """The same crop, through the real ``gs-backend extract`` (``python -m gs_backend``):
    what the viewport draws is what the backend keeps, and the export writes it."""
    if not BACKEND_PYTHON.is_file():
        pytest.skip("needs the backend venv (.venv); `make setup` creates it")
    proxy = bpy.data.objects["driver"]
    expected = expected_rows(proxy, volumes, auto=False)
    run = start_extract(bpy.context, auto=False, backend_command=str(BACKEND_PYTHON))
    assert run_to_end(run, timeout=300.0) == {'FINISHED'}, run.reports
    np.testing.assert_array_equal(np.sort(proxy_rows(proxy)), expected)
    assert [s.name for s in run.process.report.stages] == ["unusable", "crop"]
    assert export_keep(tmp_path) == expected.tolist()


def test_automatic_only_without_volumes(proxy, record):
    run = start_extract(bpy.context, backend_command=fake())
    assert run_to_end(run) == {'FINISHED'}
    assert "--crop" not in json.loads((record / "argv.json").read_text())
    rows = proxy_rows(proxy)
    np.testing.assert_array_equal(np.sort(rows), [i for i in range(GAUSSIANS)
                                                  if i % AUTO_MODULUS != 0])


def test_the_operator_is_one_undo_step(volumes, monkeypatch):
    proxy = bpy.data.objects["driver"]
    expected = expected_rows(proxy, volumes)
    monkeypatch.setenv(render_job.BACKEND_ENV, fake())
    bpy.ops.ed.undo_push(message="before")
    # As a button does: EXEC with an undo push (bpy.ops calls skip it by default).
    assert bpy.ops.gsds.extract_instrument('EXEC_DEFAULT', True) == {'FINISHED'}
    np.testing.assert_array_equal(np.sort(proxy_rows(bpy.data.objects["driver"])), expected)
    assert bpy.ops.ed.undo() == {'FINISHED'}
    assert len(bpy.data.objects["driver"].data.vertices) == GAUSSIANS
    assert bpy.ops.ed.redo() == {'FINISHED'}
    np.testing.assert_array_equal(np.sort(proxy_rows(bpy.data.objects["driver"])), expected)


def test_in_edit_mode_the_edit_mesh_is_changed(volumes):
    proxy = bpy.data.objects["driver"]
    expected = expected_rows(proxy, volumes)
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        run = start_extract(bpy.context, backend_command=fake())
        assert run_to_end(run) == {'FINISHED'}
        assert proxy.mode == 'EDIT'
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')
    np.testing.assert_array_equal(np.sort(proxy_rows(proxy)), expected)


def test_the_modal_operator_polls_on_timer_events(volumes):
    """The modal handler itself, fed the events Blender would send (no window here)."""
    proxy = bpy.data.objects["driver"]
    expected = expected_rows(proxy, volumes)
    run = start_extract(bpy.context, backend_command=fake())
    operator = SimpleNamespace(_job=run, _timer=None, _remove_timer=lambda context: None,
                               poll_job=poll_extract)
    modal = operators_extract.GSDS_OT_extract_instrument.modal

    def send(event_type: str, value: str = 'NOTHING') -> set[str]:
        return modal(operator, bpy.context, SimpleNamespace(type=event_type, value=value))

    assert send('MOUSEMOVE') == {'PASS_THROUGH'}  # Blender stays usable
    deadline = time.monotonic() + 60
    while (result := send('TIMER')) == {'RUNNING_MODAL'}:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert result == {'FINISHED'}
    np.testing.assert_array_equal(np.sort(proxy_rows(proxy)), expected)


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("mode, message", [
    ("fail", "gs-backend: error: {capture}: property scale_0: not a number"),
    ("crash", "RuntimeError: boom"),
    ("garbled", "the backend's extraction report is not JSON (stdout began with "
                "'Extracting... done')"),
    ("badkeep", "{keep}: the kept rows must be sorted, unique and in [0, 2000)"),
])
def test_backend_failures_are_one_plain_message(volumes, tmp_path, mode, message):
    proxy = bpy.data.objects["driver"]
    run = start_extract(bpy.context, backend_command=fake(mode))
    assert run_to_end(run) == {'CANCELLED'}
    text = message.format(capture=tmp_path / "driver.ply",
                          keep=run.process.work_dir / "keep.npy")
    assert run.reports[-1] == ('ERROR', f"Extraction failed: {text}")
    assert session().status == f"Failed: {text}"
    assert not session().is_running and not session().last_summary
    assert len(proxy.data.vertices) == GAUSSIANS, "the proxy is unchanged"
    assert not run.process.work_dir.exists()


def test_volumes_keeping_nothing_are_refused_by_the_backend(proxy, tmp_path):
    add_empty("far away", 'CUBE', (50.0, 0.0, 0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0)
    bpy.context.view_layer.objects.active = proxy
    run = start_extract(bpy.context, backend_command=fake())
    assert run_to_end(run) == {'CANCELLED'}
    level, message = run.reports[-1]
    assert level == 'ERROR' and message.endswith("crop.json: the crop volumes keep no Gaussian")
    assert len(proxy.data.vertices) == GAUSSIANS


def test_cancel_stops_the_backend_and_leaves_the_proxy(volumes, record):
    proxy = bpy.data.objects["driver"]
    run = start_extract(bpy.context, backend_command=fake("wait"))
    deadline = time.monotonic() + 30
    while not (record / "waiting").exists():  # the fake is ready for Ctrl-C
        assert poll_extract(bpy.context, run) == {'RUNNING_MODAL'}
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert bpy.ops.gsds.cancel_extract() == {'FINISHED'}
    assert session().status == "Stopping the extraction..."
    deadline = time.monotonic() + 30
    while (result := poll_extract(bpy.context, run)) == {'RUNNING_MODAL'}:
        assert session().status == "Stopping the extraction of driver..."
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert result == {'CANCELLED'}
    assert run.process.state.returncode == 130
    assert run.reports[-1] == ('WARNING', "Extraction of driver cancelled; the splat object "
                                          "is unchanged")
    assert session().status == "Extraction cancelled" and not session().is_running
    assert len(proxy.data.vertices) == GAUSSIANS
    assert extract_job.active_run() is None and not bpy.ops.gsds.cancel_extract.poll()


def test_a_proxy_removed_meanwhile_is_reported(volumes):
    run = start_extract(bpy.context, backend_command=fake())
    bpy.data.objects.remove(bpy.data.objects["driver"])
    assert run_to_end(run) == {'CANCELLED'}
    assert run.reports[-1] == ('ERROR', "Extraction failed: the splat object 'driver' was "
                               "removed, renamed or re-imported during the extraction; "
                               "nothing was changed")


def test_nothing_left_after_hand_deletions_changes_nothing(proxy):
    bm = bmesh.new()
    bm.from_mesh(proxy.data)
    bm.verts.ensure_lookup_table()
    # Leave only rows the fake's automatic stage removes (multiples of AUTO_MODULUS).
    bmesh.ops.delete(bm, geom=[v for v in bm.verts if v.index % AUTO_MODULUS], context='VERTS')
    bm.to_mesh(proxy.data)
    bm.free()
    left = len(proxy.data.vertices)
    run = start_extract(bpy.context, backend_command=fake())
    assert run_to_end(run) == {'CANCELLED'}
    assert "none of the 1,600 Gaussians the extraction kept is left in 'driver'" \
        in run.reports[-1][1]
    assert len(proxy.data.vertices) == left


def test_start_errors(proxy, tmp_path):
    with pytest.raises(ExtractError, match="crop only, but no crop volume is selected"):
        start_extract(bpy.context, auto=False, backend_command=fake())
    flat = add_empty("flat", 'CUBE', (0.0, 0.0, 2.0), (0.0, 0.0, 0.0), (1.0, 0.0, 1.0), 1.0)
    bpy.context.view_layer.objects.active = proxy
    with pytest.raises(ExtractError, match="crop empty 'flat''s transform is not invertible"):
        start_extract(bpy.context, backend_command=fake())
    bpy.data.objects.remove(flat)
    proxy.gsds.source_path = str(tmp_path / "gone.ply")
    with pytest.raises(ExtractError, match="source file not found"):
        start_extract(bpy.context, backend_command=fake())
    bpy.context.view_layer.objects.active = bpy.data.objects["Camera"]
    with pytest.raises(ExtractError, match="make a splat object the active object"):
        start_extract(bpy.context, backend_command=fake())
    assert not bpy.ops.gsds.extract_instrument.poll()
    assert extract_job.active_run() is None and not session().is_running


def test_operator_reports_start_errors(proxy, monkeypatch):
    monkeypatch.setenv(render_job.BACKEND_ENV, "/nonexistent/gs-backend")
    with pytest.raises(RuntimeError, match="Extraction not started: backend command "
                                           "'/nonexistent/gs-backend' not found"):
        bpy.ops.gsds.extract_instrument()
    assert len(proxy.data.vertices) == GAUSSIANS


# ---------------------------------------------------------------------------------- UI


def test_extract_panel(volumes, fake_layout):
    panel = panels.GSDS_PT_extract
    assert panel.bl_parent_id == "GSDS_PT_object" and panel.poll(bpy.context)
    layout = fake_layout()
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    assert layout.labels()[:3] == ["A box", "B cylinder", "C sphere"]
    assert layout.props() == ["gsds_crop"] * 3
    assert layout.operators() == ["gsds.extract_instrument"] * 2

    run = start_extract(bpy.context, backend_command=fake("wait"))
    layout = fake_layout()
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    assert layout.labels()[0].startswith("Extracting driver... (")
    assert layout.operators() == ["gsds.cancel_extract"]
    run.process.cancel(interrupt_grace=5.0)
    poll_extract(bpy.context, run)

    bpy.data.objects["A box"].select_set(False)
    bpy.data.objects["B cylinder"].select_set(False)
    bpy.data.objects["C sphere"].select_set(False)
    assert run_to_end(start_extract(bpy.context, backend_command=fake())) == {'FINISHED'}
    layout = fake_layout()
    panel.draw(SimpleNamespace(layout=layout), bpy.context)
    assert layout.operators() == ["gsds.extract_instrument"]  # no "Crop Only"
    labels = layout.labels()
    assert labels[0] == "Crop: select Cube, Sphere or Circle empties too"
    assert labels[-1].startswith("driver: kept 1,600 of 2,000 Gaussians (stages: ")


def test_crop_mode_and_state_contract(addon):
    assert bpy.types.Object.bl_rna.properties["gsds_crop"].enum_items.keys() == \
        ['KEEP', 'REMOVE']
    state = bpy.context.window_manager.gsds_extract
    assert {"is_running", "proxy", "status", "last_summary"} <= set(
        state.bl_rna.properties.keys())
