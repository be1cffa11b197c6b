"""``gsds.import_recording``: a tracked recording becomes a keyed, editable scene.

The recordings are written here by hand (DESIGN contract 8) from known motions, so the
expected poses come from the motions and the calibration chain computed in this file,
independently of ``gs_contract.recording``: every image time is also a tracker sample
time (the other samples lie between images, some are dropped, rows are shuffled and
quaternion signs flipped), so the replay needs no interpolation and its poses must equal
the chain exactly. Blender keeps float32 transforms, hence the 1e-6 tolerances.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector
from paths import BACKEND_PYTHON, REPO
from ply_factory import write_inria_ply

from blender_addon.blender import operators_recording, scenario_import
from blender_addon.core.camera_intrinsics import blender_camera_settings
from blender_addon.core.scenario_import import frame_rate
from gs_contract.camera import PinholeCamera, camera_matrix_world_from, world_to_camera_matrix
from gs_contract.recording import replay_file
from gs_contract.scenario import parse_scenario
from tests.pinhole import project_points

WIDTH, HEIGHT = 160, 120
# Non-square pixels and an off-centre principal point, as a calibration gives them.
K = [[210.0, 0.0, 74.5], [0.0, 207.5, 57.25], [0.0, 0.0, 1.0]]
VIDEO_PERIOD_S = 1001 / 30000  # 29.97 fps
IMAGES = 9
CLOCK_OFFSET_S = 0.25
TOLERANCE = 1e-6


def rotation(axis, angle: float) -> np.ndarray:
    """Rodrigues rotation ``[3, 3]`` about ``axis`` by ``angle`` radians."""
    x, y, z = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def similarity(scale: float, rot: np.ndarray, translation) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = scale * rot
    out[:3, 3] = translation
    return out


def quaternion_wxyz(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion of a rotation matrix (Shepperd's method, largest pivot)."""
    m = rot
    trace = np.trace(m)
    pivots = [trace, m[0, 0], m[1, 1], m[2, 2]]
    i = int(np.argmax(pivots))
    if i == 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif i == 1:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif i == 2:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    return np.array(q)


# Tracker in millimetres, axes turned, placed in the world (metres).
WORLD_FROM_TRACKER = similarity(0.001, rotation([0, 0, 1], 0.5 * math.pi), [0.1, -0.2, 0.05])
SENSOR_FROM_CAMERA = similarity(1.0, rotation([1, 1, 0], 0.3), [5.0, -3.0, 12.0])  # mm
SENSOR_FROM_TOOL = similarity(1500.0, rotation([0, 1, 1], -0.7), [2.0, 1.0, -40.0])
BED_POSE = similarity(1.0, rotation([1, 0, 0], 0.1), [0.0, 0.0, -0.02])


def tracker_from_cam_sensor(t: float) -> np.ndarray:
    """The camera sensor's motion (tracker mm), looking at the tracker origin area."""
    rot = rotation([0.2, 1.0, 0.1], 0.6 * t) @ rotation([1, 0, 0], math.pi)
    return similarity(1.0, rot, [300.0 * math.sin(t), 150.0 * t, 2500.0 + 100.0 * t])


def tracker_from_tool_sensor(t: float) -> np.ndarray:
    """The tool sensor turns by more than 180 degrees over the clip."""
    return similarity(1.0, rotation([0.3, -0.5, 1.0], 4.0 * t),
                      [100.0 * t, -50.0 + 20.0 * t, 30.0 * math.cos(t)])


def write_recording(folder: Path, images: int = IMAGES) -> Path:
    """A recording of the two sensors above over a bed and forceps; its path."""
    (folder / "assets").mkdir(parents=True)
    write_inria_ply(folder / "assets" / "bed.ply", n=30, seed=1)
    write_inria_ply(folder / "assets" / "forceps.ply", n=20, seed=2, sh_degree=1)
    base = {
        "format": "gs-scenario", "version": 1, "classes": ["forceps"],
        "assets": {"bed": {"ply": "assets/bed.ply"}, "forceps": {"ply": "assets/forceps.ply"}},
        "objects": {"bed": {"asset": "bed", "role": "background"},
                    "forceps": {"asset": "forceps", "role": "instrument", "class": "forceps"}},
        "render": {"near": 0.05, "far": 50.0},
        "output": {"image_format": "jpg", "yolo_task": "segment", "coco": False,
                   "masks": True, "amodal": True, "depth": True, "val_fraction": 0.3},
    }
    (folder / "base.json").write_text(json.dumps(base))

    video_times = [float(repr(0.04 + i * VIDEO_PERIOD_S)) for i in range(images)]
    # Exactly the replay's own sum: every image falls on a sample of each sensor.
    image_tracker_times = [t + CLOCK_OFFSET_S for t in video_times]
    between = [0.5 * (a + b) for a, b in itertools.pairwise(image_tracker_times)]
    rng = np.random.default_rng(3)
    rows = []
    for sensor, motion in (("cam", tracker_from_cam_sensor), ("tool", tracker_from_tool_sensor)):
        dropped = set(rng.choice(len(between), size=2, replace=False).tolist())
        times = image_tracker_times + [t for i, t in enumerate(between) if i not in dropped]
        for t in times:
            m = motion(t)
            q = quaternion_wxyz(m[:3, :3]) * rng.choice([-1.0, 1.0])
            rows.append([repr(t), sensor, *map(repr, q.tolist()), *map(repr, m[:3, 3].tolist())])
    rng.shuffle(rows)
    with open(folder / "poses.csv", "w", newline="") as f:
        csv.writer(f).writerows([["timestamp", "sensor", "qw", "qx", "qy", "qz",
                                  "tx", "ty", "tz"], *rows])
    with open(folder / "frames.csv", "w", newline="") as f:
        csv.writer(f).writerows([["name", "timestamp"]] + [
            [f"video/img_{i:03d}.png", repr(t)] for i, t in enumerate(video_times)])

    recording = {
        "format": "gs-recording", "version": 1, "base": "base.json",
        "tracking": {"file": "poses.csv", "format": "csv"},
        "images": {"file": "frames.csv"},
        "clock_offset_s": CLOCK_OFFSET_S, "max_gap_s": 0.1,
        "world_from_tracker": WORLD_FROM_TRACKER.tolist(),
        "camera": {"width": WIDTH, "height": HEIGHT, "K": K, "sensor": "cam",
                   "sensor_from_camera": SENSOR_FROM_CAMERA.tolist()},
        "objects": {"bed": {"pose": BED_POSE.tolist()},
                    "forceps": {"sensor": "tool", "sensor_from_asset": SENSOR_FROM_TOOL.tolist()}},
    }
    path = folder / "recording.json"
    path.write_text(json.dumps(recording))
    return path


def expected_poses(image: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(world_to_camera, {object: world_from_asset})`` at an image, from the motions."""
    t = 0.04 + image * VIDEO_PERIOD_S + CLOCK_OFFSET_S
    world_from_camera = WORLD_FROM_TRACKER @ tracker_from_cam_sensor(t) @ SENSOR_FROM_CAMERA
    rot = world_from_camera[:3, :3] / np.cbrt(np.linalg.det(world_from_camera[:3, :3]))
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rot.T
    world_to_camera[:3, 3] = -rot.T @ world_from_camera[:3, 3]
    tool = WORLD_FROM_TRACKER @ tracker_from_tool_sensor(t) @ SENSOR_FROM_TOOL
    return world_to_camera, {"bed": BED_POSE, "forceps": tool}


@pytest.fixture
def recording(tmp_path) -> Path:
    return write_recording(tmp_path)


def import_recording(path: Path) -> set[str]:
    return bpy.ops.gsds.import_recording(filepath=str(path))


def scene_snapshot() -> dict[str, list[str]]:
    """The names of everything an import could create or change."""
    scene = bpy.context.scene
    out = {kind: sorted(b.name for b in getattr(bpy.data, kind))
           for kind in scenario_import.CREATED_DATA}
    out["classes"] = [c.name for c in scene.gsds.classes]
    out["settings"] = [str(v) for v in (
        scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base,
        scene.render.resolution_x, scene.render.resolution_y, scene.camera,
        scene.gsds.image_format, scene.gsds.yolo_task)]
    return out


# ---------------------------------------------------------------------------- the import


def test_keys_equal_the_tracked_poses_at_each_image(addon, recording):
    scene = bpy.context.scene
    scene.frame_start = 10  # the images start at the scene's first frame
    assert import_recording(recording) == {'FINISHED'}

    assert (scene.frame_start, scene.frame_end) == (10, 10 + IMAGES - 1)
    camera, forceps, bed = (bpy.data.objects[n] for n in ("Camera", "forceps", "bed"))
    assert scene.camera == camera
    assert forceps.gsds.role == 'INSTRUMENT' and forceps.gsds.class_name == "forceps"
    assert bed.gsds.role == 'BACKGROUND'
    assert [c.name for c in scene.gsds.classes] == ["forceps"]
    replayed = replay_file(recording).scenario["frames"]
    assert [f["name"] for f in replayed] == [f"img_{i:03d}" for i in range(IMAGES)]
    for image in range(IMAGES):
        scene.frame_set(10 + image)
        want_camera, want_poses = expected_poses(image)
        got_camera = world_to_camera_matrix(camera.matrix_world)
        np.testing.assert_allclose(got_camera, want_camera, atol=TOLERANCE)
        np.testing.assert_allclose(got_camera, replayed[image]["camera"]["world_to_camera"],
                                   atol=TOLERANCE)
        for name, obj in (("forceps", forceps), ("bed", bed)):
            got = np.array(obj.matrix_world)
            np.testing.assert_allclose(got, want_poses[name], atol=TOLERANCE)
            np.testing.assert_allclose(got, replayed[image]["poses"][name], atol=TOLERANCE)


def test_frame_rate_is_the_images_rate(addon, recording):
    render = bpy.context.scene.render
    assert import_recording(recording) == {'FINISHED'}
    assert render.fps == 30
    assert render.fps / render.fps_base == pytest.approx(30000 / 1001, rel=1e-6)


def test_export_after_import_gives_back_the_replayed_frames(addon, recording, tmp_path):
    assert import_recording(recording) == {'FINISHED'}
    out = tmp_path / "exported.json"
    assert bpy.ops.gsds.export_scenario(filepath=str(out), frames='ALL') == {'FINISHED'}
    exported = json.loads(out.read_text())
    replayed = replay_file(recording).scenario
    ours, theirs = parse_scenario(exported, out), parse_scenario(replayed, recording)
    assert ours.output == theirs.output
    assert ours.render.near == pytest.approx(theirs.render.near)
    assert ours.render.far == pytest.approx(theirs.render.far)
    assert exported["classes"] == replayed["classes"]
    assert list(exported["objects"]) == list(replayed["objects"])
    assert len(exported["frames"]) == IMAGES
    for want, got in zip(replayed["frames"], exported["frames"], strict=True):
        assert (got["camera"]["width"], got["camera"]["height"]) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(got["camera"]["K"], K, rtol=1e-6)
        np.testing.assert_allclose(got["camera"]["world_to_camera"],
                                   want["camera"]["world_to_camera"], atol=TOLERANCE)
        assert sorted(got["poses"]) == sorted(want["poses"])
        for name, pose in want["poses"].items():
            np.testing.assert_allclose(got["poses"][name], pose, atol=TOLERANCE)


def test_imported_camera_projects_like_the_recorded_one(addon, recording):
    """Blender's own projection (world_to_camera_view) of the imported camera equals
    the pinhole projection with the recording's K and the true pose, to 0.01 px."""
    assert import_recording(recording) == {'FINISHED'}
    scene = bpy.context.scene
    rng = np.random.default_rng(0)
    for image in (0, IMAGES - 1):
        scene.frame_set(scene.frame_start + image)
        want_camera, _ = expected_poses(image)
        pinhole = PinholeCamera(WIDTH, HEIGHT, np.array(K), want_camera)
        assert_projection_parity(scene, pinhole, rng)


def test_summary_and_file_import_menu(addon, recording, fake_layout):
    from types import SimpleNamespace

    assert import_recording(recording) == {'FINISHED'}
    assert bpy.context.view_layer.objects.active.name == "Camera"
    assert {o.name for o in bpy.context.selected_objects} == {"Camera", "bed", "forceps"}
    rna = bpy.ops.gsds.import_recording.get_rna_type()
    assert rna.name == "Import Tracked Recording"
    assert {'REGISTER', 'UNDO'} <= set(operators_recording.GSDS_OT_import_recording.bl_options)
    assert rna.properties["filter_glob"].default == "*.json"
    menu = operators_recording.menu_func_import
    assert menu in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    owner = SimpleNamespace(layout=fake_layout())
    menu(owner, bpy.context)
    assert owner.layout.operators() == ["gsds.import_recording"]


def test_report_names_frames_objects_and_rate(addon, recording, capfd):
    capfd.readouterr()
    assert import_recording(recording) == {'FINISHED'}
    assert capfd.readouterr().out.splitlines() == [
        f"Info: Imported {IMAGES} frames (1-{IMAGES}: img_000 ... img_008) of 2 objects at "
        "29.97 fps from recording.json"]


def test_taken_names_are_reported(addon, recording, capfd):
    bpy.data.objects.new("forceps", None)
    capfd.readouterr()
    assert import_recording(recording) == {'FINISHED'}
    assert capfd.readouterr().out.splitlines()[-1] == (
        "Warning: Names taken in this file, objects renamed (an export uses the new names): "
        "{'forceps': 'forceps.001'}")


# ---------------------------------------------------------------------------- refusals


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, expected", [
    (lambda p: p.unlink(), "recording.json: file not found"),
    (lambda p: _edit(p, lambda d: d.update(version=2)), "recording.json: version:"),
    (lambda p: _edit(p, lambda d: d["camera"].update(sensor="nope")),
     "recording.json: camera.sensor: unknown sensor 'nope'"),
    (lambda p: _edit(p, lambda d: d.update(clock_offset_s=50.0)), "img_000"),
    (lambda p: _edit(p, lambda d: d["camera"]["K"][0].__setitem__(1, 3.0)),
     "recording.json: camera.K: expected [[fx,0,cx],[0,fy,cy],[0,0,1]] (no skew)"),
    (lambda p: _edit(p, lambda d: d["camera"]["K"][1].__setitem__(1, 0.5)),
     "recording.json: camera.K: fx / fy = 420 is beyond Blender's pixel aspect range"),
    (lambda p: (p.parent / "assets" / "forceps.ply").write_bytes(b"ply\nnonsense\n"),
     "assets/forceps.ply: header: unreadable header"),
])
def test_bad_recordings_are_refused_in_one_line_leaving_nothing(addon, recording, change,
                                                                expected):
    """The operator reports one error (``bpy.ops`` raises it in a script) naming the file
    and the field, and the scene is as it was."""
    before = scene_snapshot()
    change(recording)
    with pytest.raises(RuntimeError) as raised:
        import_recording(recording)
    text = str(raised.value)
    assert text.startswith("Error: ") and "\n" not in text.strip() and expected in text, text
    assert str(recording.parent) in text  # names the file
    assert scene_snapshot() == before


def test_a_failure_while_building_removes_what_was_made(addon, recording, monkeypatch):
    """Building fails after the proxies and the camera exist: they, their meshes, actions,
    materials and node groups and the classes added are removed again."""
    bpy.data.objects.new("kept", None)
    bpy.context.scene.gsds.classes.add().name = "existing"
    before = scene_snapshot()

    def fail(camera, objects, *args):
        assert camera.name in bpy.data.objects and objects["forceps"].animation_data is None
        objects["forceps"].keyframe_insert("location", frame=1)
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(scenario_import, "key_scenario", fail)
    with pytest.raises(RuntimeError, match="simulated failure"):
        import_recording(recording)
    assert scene_snapshot() == before


# ---------------------------------------------------------------------------- pure parts


def test_frame_rate_from_image_times():
    assert frame_rate(np.arange(10) * (1001 / 30000)) == (30, pytest.approx(1.001, rel=1e-12))
    assert frame_rate(np.array([0.0, 0.04, 0.08, 0.2, 0.24])) == (25, pytest.approx(1.0))
    assert frame_rate(np.array([0.0, 0.5, 1.0])) == (2, pytest.approx(1.0))
    assert frame_rate(np.array([0.0, 3.0])) == (1, pytest.approx(3.0))  # 1/3 Hz
    assert frame_rate(np.array([1.0])) is None
    assert frame_rate(np.array([1.0, 1.0])) is None


def assert_projection_parity(scene, pinhole: PinholeCamera, rng, n: int = 40) -> None:
    """Blender's ``world_to_camera_view`` of the scene camera vs the pinhole projection
    of ``pinhole`` (u = x * W, v = (1 - y) * H), for points in front of the camera."""
    cam = scene.camera
    bpy.context.view_layer.update()
    m = cam.matrix_world.normalized()
    pts = []
    for _ in range(n):
        depth = rng.uniform(0.5, 6.0)
        pts.append(m @ Vector((rng.uniform(-0.8, 0.8) * depth, rng.uniform(-0.8, 0.8) * depth,
                               -depth)))
    ours = project_points(pinhole, np.array([tuple(p) for p in pts]))
    ndc = [world_to_camera_view(scene, cam, p) for p in pts]
    theirs = np.array([(q.x * pinhole.width, (1.0 - q.y) * pinhole.height) for q in ndc])
    err = np.abs(ours - theirs).max()
    assert err <= 0.01, f"max projection difference {err:.4g} px"


@pytest.mark.parametrize("width, height, K_", [
    (640, 480, [[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1]]),
    (640, 480, [[520.0, 0, 300.5], [0, 515.0, 250.25], [0, 0, 1]]),  # fx > fy
    (480, 640, [[400.0, 0, 250.0], [0, 460.0, 300.0], [0, 0, 1]]),  # fx < fy, portrait
    (1280, 1024, [[20.0, 0, 700.0], [0, 20.0, 480.0], [0, 0, 1]]),  # under 1 mm at 36 mm
])
def test_camera_settings_invert_the_intrinsics(addon, width, height, K_):
    """K -> Blender settings -> Blender's own projection gives K's projection back."""
    settings = blender_camera_settings(K_, width, height)
    np.testing.assert_allclose(settings.intrinsics(), K_, rtol=1e-12, atol=1e-9)
    scene = bpy.context.scene
    camera = scenario_import.create_camera(settings, 0.1, 100.0, scene.collection)
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    render.pixel_aspect_x, render.pixel_aspect_y = settings.pixel_aspect_x, \
        settings.pixel_aspect_y
    scene.camera = camera
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rotation([0.4, -0.2, 1.0], 2.0)
    world_to_camera[:3, 3] = [0.3, -0.1, 2.0]
    camera.matrix_world = Matrix(camera_matrix_world_from(world_to_camera).tolist())
    pinhole = PinholeCamera(width, height, np.array(K_), world_to_camera)
    assert_projection_parity(scene, pinhole, np.random.default_rng(1))


# ------------------------------------------------------------------ the backend's generator

# Runs in the backend venv: gs_backend.synthetic.recording writes a recording with a
# tracker of its own (40 Hz, jitter, drops, shuffled rows, mm units, a clock offset and
# random hand-eye calibrations) and returns the true poses at the image times. Every
# image time also gets a sample, so the true poses are what the import must key.
GENERATOR = r"""
import math, sys
from pathlib import Path
import numpy as np
from gs_backend.synthetic.recording import make_recording

folder, base = Path(sys.argv[1]), Path(sys.argv[2])

def rotation(axis, angle):
    x, y, z = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k

def camera(t):  # world_from_camera, OpenCV axes, looking at the origin
    eye = np.array([2.0 * math.cos(t), 2.0 * math.sin(t) - 1.0, 1.5])
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    out = np.eye(4)
    out[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    out[:3, 3] = eye
    return out

def forceps(t):
    out = np.eye(4)
    out[:3, :3] = 1.2 * rotation([0.3, -0.5, 1.0], 3.0 * t)
    out[:3, 3] = [0.2 * t, -0.1, 0.05 * math.sin(3 * t)]
    return out

times = [0.3 + i / 30 for i in range(12)]
truth = make_recording(folder, base, camera=camera, tools={"forceps": forceps},
                       image_times_s=times, tracker_start_s=0.0, tracker_end_s=1.0,
                       extra_sample_times_s=times, seed=4)
np.savez(folder / "truth.npz", world_to_camera=truth.world_to_camera,
         forceps=truth.poses["forceps"], bed=truth.poses["bed"])
"""


def test_a_recording_from_the_backends_generator_keys_the_true_poses(addon, tmp_path):
    if not BACKEND_PYTHON.exists():
        pytest.skip("the backend venv (.venv) is missing: no recording generator")
    scene_dir = tmp_path / "scene"
    write_recording(scene_dir)  # for its assets and base.json
    base = json.loads((scene_dir / "base.json").read_text())
    base["frames"] = [{"name": "f0", "poses": {"bed": BED_POSE.tolist()},
                       "camera": {"width": WIDTH, "height": HEIGHT, "K": K,
                                  "world_to_camera": np.eye(4).tolist()}}]
    (scene_dir / "base.json").write_text(json.dumps(base))
    folder = tmp_path / "take"
    done = subprocess.run([str(BACKEND_PYTHON), "-c", GENERATOR, str(folder),
                           str(scene_dir / "base.json")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    truth = np.load(folder / "truth.npz")

    assert import_recording(folder / "recording.json") == {'FINISHED'}
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end, scene.render.fps) == (1, 12, 30)
    assert scene.render.fps_base == pytest.approx(1.0, abs=1e-9)
    camera, forceps, bed = (bpy.data.objects[n] for n in ("Camera", "forceps", "bed"))
    for image in range(12):
        scene.frame_set(1 + image)
        np.testing.assert_allclose(world_to_camera_matrix(camera.matrix_world),
                                   truth["world_to_camera"][image], atol=TOLERANCE)
        np.testing.assert_allclose(np.array(forceps.matrix_world), truth["forceps"][image],
                                   atol=TOLERANCE)
        np.testing.assert_allclose(np.array(bed.matrix_world), truth["bed"][image],
                                   atol=TOLERANCE)
