"""Synthetic demo assets and the demo scenario, checked without a renderer.

Independent oracles: gsplat's pure-torch ``_quat_to_rotmat`` and
``_spherical_harmonics`` (the 3DGS basis as gsplat evaluates it), plyfile for
reading the written PLYs, and plain pinhole projection for the scenario.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _quat_to_rotmat, _spherical_harmonics
from plyfile import PlyData

from gs_backend.gaussians import SH_C0, Gaussians
from gs_backend.synthetic import build_demo, make_needle_driver, make_tissue
from gs_backend.synthetic.instrument import SHAFT_LENGTH_M, SHAFT_RADIUS_M, SHAFT_START_M
from gs_contract.scenario import load_scenario

SMALL = 2_000


def _rotmats(g: Gaussians) -> np.ndarray:
    return _quat_to_rotmat(g.quats.double()).numpy()  # [N, 3, 3]; column 2 = thinnest axis


def _colours(g: Gaussians, dirs: np.ndarray) -> np.ndarray:
    """``[N, 3]`` colour of each Gaussian seen along ``dirs`` (camera -> Gaussian), gsplat's way."""
    d = torch.as_tensor(np.broadcast_to(dirs, (g.count, 3)).copy(), dtype=torch.float32)
    raw = _spherical_harmonics(g.sh_degree, d, g.sh)
    return (raw + 0.5).clamp_min(0.0).numpy()


def _dc_rgb(g: Gaussians) -> np.ndarray:
    return (0.5 + SH_C0 * g.sh[:, 0, :]).numpy()


def _coverage_from_above(g: Gaussians, xy: np.ndarray) -> np.ndarray:
    """Opacity accumulated at query points ``[M, 2]`` in an orthographic view along -z."""
    rot = _rotmats(g)
    scales = g.scales.double().numpy()
    cov = np.einsum("nij,nj,nkj->nik", rot, scales**2, rot)[:, :2, :2]  # xy marginal
    inv = np.linalg.inv(cov)
    means = g.means.double().numpy()[:, :2]
    opac = g.opacities.double().numpy()
    transmittance = np.ones(xy.shape[0])
    for lo in range(0, g.count, 512):
        d = xy[:, None, :] - means[None, lo:lo + 512]  # [M, n, 2]
        q = np.einsum("mni,nij,mnj->mn", d, inv[lo:lo + 512], d)
        alpha = np.minimum(0.999, opac[None, lo:lo + 512] * np.exp(-0.5 * q))
        transmittance *= np.prod(1.0 - alpha, axis=1)
    return 1.0 - transmittance


# ---------------------------------------------------------------------------
# tissue


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tissue_conventions(seed):
    size = 0.2
    g = make_tissue(SMALL, seed=seed, size_m=size)
    assert abs(g.count - SMALL) <= 0.05 * SMALL
    assert g.sh_degree == 1
    assert torch.isfinite(g.means).all() and all(torch.isfinite(t).all() for t in g._fields())
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(g.count), atol=1e-5)
    assert ((g.opacities > 0) & (g.opacities < 1)).all()
    assert g.opacities.median() > 0.8
    means = g.means.numpy()
    assert np.abs(means[:, :2]).max() <= size / 2 + 1e-6
    assert np.abs(means[:, :2].mean(axis=0)).max() < 0.02 * size  # centred
    inner = np.abs(means[:, :2]).max(axis=1) < 0.3 * size
    assert np.median(np.abs(means[inner, 2])) < 0.05 * size  # a surface around z = 0 ...
    assert np.ptp(means[inner, 2]) > 0.02 * size  # ... with folds,
    assert means[~inner, 2].mean() > means[inner, 2].mean() + 0.02 * size  # rising at the rim
    # Flat Gaussians lying in the surface: the thinnest axis is the normal, pointing up.
    rot = _rotmats(g)
    scales = g.scales.numpy()
    assert (scales[:, 2] < 0.3 * scales[:, :2].min(axis=1)).all()
    normals = rot[:, :, 2]
    assert (normals[:, 2] > 0).all()
    assert np.mean(normals[inner, 2] > 0.8) > 0.8


@pytest.mark.parametrize("seed", [0, 3])
def test_tissue_is_closed_seen_from_above(seed):
    size = 0.2
    g = make_tissue(3_000, seed=seed, size_m=size)
    grid = np.linspace(-0.45 * size, 0.45 * size, 48)
    xy = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    assert _coverage_from_above(g, xy).min() > 0.98


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tissue_colours_pink_with_fat_and_dark_vessels(seed):
    g = make_tissue(6_000, seed=seed)
    rgb = _dc_rgb(g)
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    mean = rgb.mean(axis=0)
    assert mean[0] > mean[1] > mean[2] - 0.05  # reddish
    assert mean[0] > 0.45
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    dark_red = (luminance < 0.6 * np.median(luminance)) & (rgb[:, 0] > rgb[:, 1])
    assert dark_red.mean() > 0.005  # vessels
    yellowish = (rgb[:, 1] > 0.55) & (rgb[:, 1] > 0.7 * rgb[:, 0]) & (rgb[:, 2] < rgb[:, 1] - 0.15)
    assert yellowish.mean() > 0.01  # fat


def test_tissue_sheen_is_brightest_seen_face_on():
    g = make_tissue(SMALL, seed=0)
    normals = _rotmats(g)[:, :, 2]
    tangents = _rotmats(g)[:, :, 0]
    face_on = _colours(g, -normals).sum(axis=1)
    grazing = _colours(g, tangents).sum(axis=1)
    gain = face_on - grazing
    assert (gain > 0.02).all()
    assert gain.max() < 0.6  # a subtle sheen, not a mirror


def test_tissue_is_deterministic_per_seed():
    a, b, c = make_tissue(SMALL, seed=5), make_tissue(SMALL, seed=5), make_tissue(SMALL, seed=6)
    for name in ("means", "quats", "scales", "opacities", "sh"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.sh, c.sh)


# ---------------------------------------------------------------------------
# instrument


@pytest.mark.parametrize("seed", [1, 4])
def test_needle_driver_frame_and_shape(seed):
    g = make_needle_driver(SMALL, seed=seed)
    assert abs(g.count - SMALL) <= 0.05 * SMALL
    assert g.sh_degree == 3
    assert all(torch.isfinite(t).all() for t in g._fields())
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(g.count), atol=1e-5)
    m = g.means.numpy()
    # Tip at the origin, the shaft along +x ending 0.25 m further.
    assert -5e-4 < m[:, 0].min() < 1e-3
    assert m[:, 0].max() == pytest.approx(SHAFT_START_M + SHAFT_LENGTH_M, abs=1e-3)
    assert 0.25 < SHAFT_START_M + SHAFT_LENGTH_M < 0.3
    on_shaft = (m[:, 0] > SHAFT_START_M + 0.01) & (m[:, 0] < SHAFT_START_M + SHAFT_LENGTH_M - 0.01)
    radius = np.linalg.norm(m[on_shaft, 1:], axis=1)
    assert np.allclose(radius, SHAFT_RADIUS_M, rtol=0.02)
    assert 0.0035 < SHAFT_RADIUS_M < 0.0045  # ~8 mm diameter
    # Flattened tangentially: the thinnest axis is radial on the shaft.
    normals = _rotmats(g)[on_shaft][:, :, 2]
    radial = np.concatenate([np.zeros((on_shaft.sum(), 1)), m[on_shaft, 1:]], axis=1)
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    assert (np.abs(np.sum(normals * radial, axis=1)) > 0.99).all()
    scales = g.scales.numpy()
    assert (scales[:, 2] < 0.3 * scales[:, :2].min(axis=1)).all()


def test_jaws_open_in_the_xz_plane():
    closed = make_needle_driver(SMALL, seed=1, jaw_opening_deg=0.0).means.numpy()
    opened = make_needle_driver(SMALL, seed=1, jaw_opening_deg=40.0).means.numpy()
    near_tip = lambda m: m[m[:, 0] < 0.004]  # noqa: E731
    # Closed jaws: a bar a few mm thick; open 40 deg: tips ~15 mm * sin(20 deg) off axis.
    assert np.abs(near_tip(closed)[:, 2]).max() < 0.002
    assert np.abs(near_tip(opened)[:, 2]).max() > 0.004
    assert np.abs(near_tip(opened)[:, 1]).max() < 0.003  # not in y
    upper = near_tip(opened)[:, 2] > 0
    assert 0.3 < upper.mean() < 0.7  # one jaw each way


def test_shaft_is_closed_seen_from_above():
    g = make_needle_driver(8_000, seed=1)
    x = np.linspace(SHAFT_START_M + 0.01, SHAFT_START_M + 0.2, 40)
    y = np.linspace(-0.8 * SHAFT_RADIUS_M, 0.8 * SHAFT_RADIUS_M, 7)
    xy = np.stack(np.meshgrid(x, y), axis=-1).reshape(-1, 2)
    upper = g.select(g.means[:, 2] > 0)  # the near half only: holes would show
    assert _coverage_from_above(upper, xy).min() > 0.98


def test_instrument_shine_depends_on_view_direction():
    g = make_needle_driver(4_000, seed=1)
    rng = np.random.default_rng(0)
    dirs = rng.normal(size=(64, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lum = np.stack([_colours(g, d).mean(axis=1) for d in dirs])  # [64, N]
    steel = g.means[:, 0].numpy() < SHAFT_START_M  # jaws and wrist
    spread = lum.max(axis=0) - lum.min(axis=0)
    assert np.median(spread[steel]) > 0.3
    assert np.median(spread[~steel]) > 0.1  # the black shaft has a gloss too
    assert lum.min() >= 0.0


@pytest.mark.parametrize("seed", [1, 2])
def test_highlight_travels_when_the_instrument_turns_about_its_shaft(seed):
    """Camera fixed above (looking down -z); rotate the instrument about its shaft (x):
    the angular position of the brightest shaft Gaussians must move (lights fixed in
    the instrument frame), which a highlight around the normal alone could not do."""
    g = make_needle_driver(6_000, seed=seed)
    m = g.means.numpy()
    shaft = (m[:, 0] > SHAFT_START_M + 0.02) & (m[:, 0] < SHAFT_START_M + 0.2)
    local_angle = np.arctan2(m[shaft, 2], m[shaft, 1])
    view_world = np.array([0.0, 0.0, -1.0])
    peaks = []
    for roll in np.radians([0.0, 90.0, 180.0, 270.0]):
        c, s = math.cos(roll), math.sin(roll)
        rot = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        view_local = rot.T @ view_world  # colour(d) = colour_local(R^T d)
        lum = _colours(g.select(torch.from_numpy(shaft)), view_local).mean(axis=1)
        world_angle = local_angle + roll
        visible = np.sin(world_angle) > 0.2  # the half facing the camera
        brightest = np.argsort(np.where(visible, lum, -1.0))[-20:]
        peaks.append(np.angle(np.mean(np.exp(1j * world_angle[brightest]))))
    diffs = [abs(np.angle(np.exp(1j * (a - peaks[0])))) for a in peaks[1:]]
    assert max(diffs) > math.radians(20)


# ---------------------------------------------------------------------------
# demo scenario

RENDER_DEFAULTS = {"background": [0, 0, 0], "near": 0.01, "far": 1e10, "sh_degree": None,
                   "antialiased": False}
OUTPUT_DEFAULTS = {"image_format": "png", "yolo_task": "detect", "coco": True, "masks": True,
                   "amodal": False, "depth": False, "val_fraction": 0.2, "split_seed": 0,
                   "min_visible_pixels": 20, "mask_threshold": 0.5}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo")
    path = build_demo(out, frames=24, tissue_count=SMALL, instrument_count=SMALL)
    return path, json.loads(path.read_text(encoding="utf-8"))


def _project(frame: dict, point_world: np.ndarray) -> tuple[float, float, float]:
    K = np.array(frame["camera"]["K"])
    w2c = np.array(frame["camera"]["world_to_camera"])
    p = w2c[:3, :3] @ point_world + w2c[:3, 3]
    return K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2], p[2]


def _in_image(frame: dict, uvz: tuple[float, float, float]) -> bool:
    u, v, z = uvz
    cam = frame["camera"]
    return z > 0 and 0 <= u < cam["width"] and 0 <= v < cam["height"]


def _tip(frame: dict, obj: str) -> np.ndarray:
    return np.array(frame["poses"][obj])[:3, 3]  # the local origin is the jaw tip


def test_scenario_file_has_the_contract_keys(demo):
    path, sc = demo
    assert path.name == "scenario.json"
    assert list(sc) == ["format", "version", "classes", "assets", "objects", "render", "output",
                        "frames"]
    assert sc["format"] == "gs-scenario" and sc["version"] == 1
    assert sc["classes"] == ["needle_driver", "grasper"]
    assert sc["render"] == RENDER_DEFAULTS
    assert sc["output"] == OUTPUT_DEFAULTS
    assert sc["objects"]["tissue"] == {"asset": "tissue", "role": "background"}
    assert sc["objects"]["driver"]["role"] == "instrument"
    assert sc["objects"]["driver"]["class"] == "needle_driver"
    assert sc["objects"]["grasper"]["role"] == "instrument"
    assert sc["objects"]["grasper"]["class"] == "grasper"
    for name, asset in sc["assets"].items():
        rel = Path(asset["ply"])
        assert not rel.is_absolute() and rel.parts[0] == "assets", name
        vertices = PlyData.read(str(path.parent / rel))["vertex"]
        assert abs(vertices.count - SMALL) < 0.05 * SMALL
    # The project's own reader accepts it too.
    scenario = load_scenario(path)
    assert [o.instance_id for o in scenario.instruments] == [1, 2]


def test_frames_names_cameras_and_poses(demo):
    _, sc = demo
    names = [f["name"] for f in sc["frames"]]
    assert names == [f"frame_{i:04d}" for i in range(1, 25)]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    for frame in sc["frames"]:
        cam = frame["camera"]
        assert (cam["width"], cam["height"]) == (640, 480)
        K = np.array(cam["K"])
        assert K[0, 1] == K[1, 0] == K[2, 0] == K[2, 1] == 0 and K[2, 2] == 1
        hfov = math.degrees(2 * math.atan(cam["width"] / (2 * K[0, 0])))
        assert 65 < hfov < 75
        w2c = np.array(cam["world_to_camera"])
        assert np.allclose(w2c[3], [0, 0, 0, 1])
        assert np.allclose(w2c[:3, :3] @ w2c[:3, :3].T, np.eye(3), atol=1e-8)
        assert np.linalg.det(w2c[:3, :3]) == pytest.approx(1.0, abs=1e-8)
        for obj, pose in frame["poses"].items():
            m = np.array(pose)
            assert m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1]), obj
            a = m[:3, :3]
            scale = np.linalg.det(a) ** (1 / 3)
            assert scale > 0
            assert np.allclose(a @ a.T, scale**2 * np.eye(3), atol=1e-8), obj
        assert set(frame["poses"]) <= {"tissue", "driver", "grasper"}
        assert {"tissue", "driver"} <= set(frame["poses"])


def test_camera_looks_down_at_the_tissue_from_a_laparoscope_distance(demo):
    _, sc = demo
    for frame in sc["frames"]:
        w2c = np.array(frame["camera"]["world_to_camera"])
        centre = -w2c[:3, :3].T @ w2c[:3, 3]
        assert 0.10 < np.linalg.norm(centre) < 0.22
        forward = w2c[2, :3]
        assert forward[2] < -0.5  # looking down
        uvz = _project(frame, np.zeros(3))
        assert _in_image(frame, uvz), frame["name"]
        u, v, _ = uvz
        assert abs(u - 320) < 120 and abs(v - 240) < 100  # near the middle
        # Image "up" stays roughly world up (only a slight roll).
        down_world = w2c[1, :3]
        horizontal = np.array([forward[0], forward[1], 0.0]) / np.hypot(forward[0], forward[1])
        assert down_world @ horizontal < -0.3
    distances = [np.linalg.norm(-np.array(f["camera"]["world_to_camera"])[:3, :3].T
                                @ np.array(f["camera"]["world_to_camera"])[:3, 3])
                 for f in sc["frames"]]
    assert max(distances) - min(distances) > 0.01  # the camera moves


def test_instruments_enter_work_and_leave(demo):
    _, sc = demo
    frames = sc["frames"]
    s = [i / (len(frames) - 1) for i in range(len(frames))]
    driver_in = [_in_image(f, _project(f, _tip(f, "driver"))) for f in frames]
    assert not driver_in[0]  # sweeps in from outside the view
    assert all(inside for inside, t in zip(driver_in, s, strict=True) if t >= 0.3)

    absent = [i for i, f in enumerate(frames) if "grasper" not in f["poses"]]
    assert 1 <= len(absent) <= 2 and absent == list(range(len(absent)))
    present = [i for i, f in enumerate(frames) if "grasper" in f["poses"]]
    grasper_in = {i: _in_image(frames[i], _project(frames[i], _tip(frames[i], "grasper")))
                  for i in present}
    assert not grasper_in[present[0]]  # posed, but not yet in view
    assert all(grasper_in[i] for i in present if 0.45 <= s[i] <= 0.8)
    assert not grasper_in[present[-1]]  # has left the view again
    for i in present:  # never behind the camera
        assert _project(frames[i], _tip(frames[i], "grasper"))[2] > 0.01


def test_the_grasper_passes_in_front_of_the_driver(demo):
    """Axis points of the two instruments (tip to 6 cm up the shaft) whose projections are
    closer than the sum of their projected radii (3 mm, conservatively) overlap on screen."""
    _, sc = demo
    axis = np.stack([np.linspace(0.0, 0.06, 61), np.zeros(61), np.zeros(61), np.ones(61)])
    radius = 0.003
    occluding = []
    for frame in sc["frames"]:
        if "grasper" not in frame["poses"]:
            continue
        uvz = {}
        for obj in ("driver", "grasper"):
            world = (np.array(frame["poses"][obj]) @ axis)[:3].T
            uvz[obj] = np.array([_project(frame, p) for p in world])
        d, g = uvz["driver"], uvz["grasper"]
        fx = frame["camera"]["K"][0][0]
        reach = fx * radius * (1 / np.abs(d[:, None, 2]) + 1 / np.abs(g[None, :, 2]))
        close = np.hypot(d[:, None, 0] - g[None, :, 0], d[:, None, 1] - g[None, :, 1]) < reach
        nearer = g[None, :, 2] < d[:, None, 2] - 0.005
        inside = (d[:, None, 2] > 0) & (0 <= d[:, None, 0]) & (d[:, None, 0] < 640) \
            & (0 <= d[:, None, 1]) & (d[:, None, 1] < 480)
        if (close & nearer & inside).any():
            occluding.append(frame["name"])
    assert len(occluding) >= 3


def test_driver_turns_about_its_shaft(demo):
    _, sc = demo
    jaw_axes = np.array([np.array(f["poses"]["driver"])[:3, 2] for f in sc["frames"]])
    cosines = jaw_axes @ jaw_axes.T
    assert cosines.min() < math.cos(math.radians(120))


def test_build_demo_keeps_assets_with_the_same_parameters(tmp_path):
    kwargs = dict(frames=3, width=64, height=48, tissue_count=500, instrument_count=300)
    path = build_demo(tmp_path, **kwargs)
    plys = sorted((tmp_path / "assets").glob("*.ply"))
    assert [p.name for p in plys] == ["grasper.ply", "needle_driver.ply", "tissue.ply"]
    stamps = {p.name: p.stat().st_mtime_ns for p in plys}
    text = path.read_text(encoding="utf-8")
    assert build_demo(tmp_path, **kwargs) == path
    assert {p.name: p.stat().st_mtime_ns for p in plys} == stamps
    assert path.read_text(encoding="utf-8") == text  # same scenario: a render can resume
    sizes = {p.name: p.stat().st_size for p in plys}
    build_demo(tmp_path, **{**kwargs, "instrument_count": 600})
    assert (tmp_path / "assets" / "needle_driver.ply").stat().st_size > sizes["needle_driver.ply"]
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


# ---------------------------------------------------------------------------
# scripts/make_demo.py, end to end at toy size


def _load_make_demo():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_demo.py"
    spec = importlib.util.spec_from_file_location("make_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOY_DEMO = ["--frames", "3", "--device", "cpu", "--width", "96", "--height", "72",
            "--tissue-count", "3000", "--instrument-count", "1500"]
BLENDER_PYTHON = Path(__file__).resolve().parents[1] / ".venv-blender" / "bin" / "python"


def test_make_demo_renders_and_resumes(tmp_path, capsys):
    make_demo = _load_make_demo()
    argv = ["--out", str(tmp_path), "--no-blender", "--extension-dir", str(tmp_path / "dist"),
            *TOY_DEMO]
    assert make_demo.main(argv) == 0
    out = capsys.readouterr().out
    [extension] = (tmp_path / "dist").glob("gs_dataset_studio-*.zip")  # with its wheel
    assert f"extension:     {extension}" in out
    # the instruments were extracted from raw captures, and the demo says how well
    for name in ("needle_driver", "grasper"):
        assert f"extracted {name} from its raw capture" in out
        report = json.loads((tmp_path / "captures" / f"{name}.extract.json").read_text())
        assert report["out"] == str(tmp_path / "assets" / f"{name}.ply")
        assert report["kept"] < report["rows"]  # table, room, floaters, halos were cut
        truth = report["ground_truth"]
        assert truth["precision"] >= 0.99 and truth["recall"] >= 0.99, truth
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert [f["name"] for f in manifest["frames"]] == ["frame_0001", "frame_0002", "frame_0003"]
    images = sorted((tmp_path / "dataset" / "images").rglob("*.png"))
    assert len(images) == 3
    sheet = (tmp_path / "contact_sheet.png")
    assert sheet.is_file()
    assert str(sheet) in out
    # the paper's validation path: a tracked recording replayed and compared with its video
    replayed = json.loads((tmp_path / "replayed_scenario.json").read_text())
    video = sorted(p.stem for p in (tmp_path / "recording" / "video").glob("*.png"))
    assert [f["name"] for f in replayed["frames"]] == video and len(video) == 12
    summary = json.loads((tmp_path / "realism" / "summary.json").read_text())
    assert summary["frames"] == 12
    assert 15.0 < summary["psnr"]["mean"] < 45.0  # alike, not identical: the camera model
    assert str(tmp_path / "realism" / "report.md") in out
    # the sidecar's preview of the first frame is the dataset's image, byte for byte
    [first] = (tmp_path / "dataset" / "images").rglob("frame_0001.png")
    assert (tmp_path / "preview.png").read_bytes() == first.read_bytes()
    assert "the PNG is identical to the dataset's image" in out
    before = {p: p.stat().st_mtime_ns for p in images + sorted(tmp_path.glob("assets/*.ply"))}
    assert make_demo.main(argv) == 0  # resumes: nothing is rebuilt or re-rendered
    assert {p: p.stat().st_mtime_ns for p in before} == before
    # Other parameters: assets and the stale dataset are made afresh (not refused).
    argv[argv.index("--frames") + 1] = "2"
    assert make_demo.main(argv) == 0
    manifest = json.loads((tmp_path / "dataset" / "manifest.json").read_text())
    assert [f["name"] for f in manifest["frames"]] == ["frame_0001", "frame_0002"]
    assert len(sorted((tmp_path / "dataset" / "images").rglob("*.png"))) == 2


@pytest.mark.skipif(not BLENDER_PYTHON.is_file(),
                    reason="needs .venv-blender (bpy); `make setup` creates it")
def test_make_demo_through_blender_matches_the_scenario(tmp_path):
    """The Blender path (scenario -> demo.blend -> export -> render) labels the same
    instances in the same places as rendering the demo scenario directly."""
    make_demo = _load_make_demo()
    direct, blender = tmp_path / "direct", tmp_path / "blender"
    dist = ["--extension-dir", str(tmp_path / "dist")]
    assert make_demo.main(["--out", str(direct), "--no-blender", *dist, *TOY_DEMO]) == 0
    assert make_demo.main(["--out", str(blender), *dist, *TOY_DEMO]) == 0
    assert (blender / "demo.blend").is_file()
    assert (blender / "contact_sheet.png").is_file()
    exported = json.loads((blender / "dataset" / "scenario.json").read_text())
    assert set(exported["objects"]) == {"tissue", "driver", "grasper"}

    def instances(root: Path) -> list:
        manifest = json.loads((root / "dataset" / "manifest.json").read_text())
        return [(f["name"], f["split"],
                 sorted((i["class"], i["box"]) for i in f["instances"] if i["labelled"]))
                for f in manifest["frames"]]

    want, got = instances(direct), instances(blender)
    assert [w[:2] for w in want] == [g[:2] for g in got]
    assert any(w[2] for w in want), "the toy demo should label something"
    for (name, _, want_rows), (_, _, got_rows) in zip(want, got, strict=True):
        assert [c for c, _ in want_rows] == [c for c, _ in got_rows], name
        for (_, want_box), (_, got_box) in zip(want_rows, got_rows, strict=True):
            # float32 poses in Blender may move an edge pixel, no more
            np.testing.assert_allclose(got_box, want_box, atol=1)

    # Again: demo.blend (which a person may have edited) is kept, nothing re-renders.
    files = [blender / "demo.blend", *sorted((blender / "dataset" / "images").rglob("*.png"))]
    before = {p: p.stat().st_mtime_ns for p in files}
    assert make_demo.main(["--out", str(blender), *dist, *TOY_DEMO]) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_tissue_fills_every_view(demo):
    """No background shows: every cell of a coarse grid over each image receives tissue."""
    path, sc = demo
    v = PlyData.read(str(path.parent / sc["assets"]["tissue"]["ply"]))["vertex"]
    means = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float64)
    for frame in sc["frames"]:
        K = np.array(frame["camera"]["K"])
        w2c = np.array(frame["camera"]["world_to_camera"])
        p = means @ w2c[:3, :3].T + w2c[:3, 3]
        p = p[p[:, 2] > 0]
        u, v_ = K[0, 0] * p[:, 0] / p[:, 2] + K[0, 2], K[1, 1] * p[:, 1] / p[:, 2] + K[1, 2]
        cols = np.floor(u / frame["camera"]["width"] * 8).astype(int)
        rows = np.floor(v_ / frame["camera"]["height"] * 6).astype(int)
        ok = (cols >= 0) & (cols < 8) & (rows >= 0) & (rows < 6)
        hit = np.zeros((6, 8), bool)
        hit[rows[ok], cols[ok]] = True
        assert hit.all(), (frame["name"], np.argwhere(~hit).tolist())
