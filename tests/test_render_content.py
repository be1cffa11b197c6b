"""What the rendered files contain: pixels, visible masks and amodal masks.

Two small scenarios (64x48, non-zero background, oblique cameras away from the
origin, SH degree 3 instruments posed with rotation and uniform scale) are
rendered end to end through ``gs-backend render`` and the files it writes are
compared with an expectation computed here from the in-memory assets that were
written to the PLY files, independently of the backend's posing, SH and
compositing code:

* posing by (s, R, t) written out in the test (mean -> s R m + t,
  quat -> q_R * q, scale -> s * scale, DESIGN contract 2);
* colours from the *original* asset's SH evaluated at R^T d, with
  d = mean_world - camera centre and camera centre = -R_wc^T t_wc (contract 2:
  colour(d) = colour_local(R^T d)), by gsplat's own pure-torch
  ``_spherical_harmonics``, then ``clamp_min(. + 0.5, 0)`` (contract 3);
* compositing by the brute-force float64 reference in tests/raster_reference.py,
  including the background as T * bg;
* the visible mask by the contract 4 rule (largest weight, if >= mask_threshold),
  the amodal mask by rendering each instrument alone.

Tolerances. The backend composites in float32; against the float64 reference its
values differ by ~1e-6 (measured below 1e-6 here, PLY round trip included). So:

* RGB: the PNG must equal round(clip(expected, 0, 1) * 255) exactly, except where
  the expected value lies within ``VALUE_NOISE * 255`` of a rounding boundary
  (x.5 levels); there float noise may legitimately round the other way, and only
  there a difference of one level is allowed. Such channels are ~0.5% of the
  image and the test asserts they stay under 2%.
* Masks: pixels whose decision (weight vs. threshold, or the top two weights
  against each other) is within ``VALUE_NOISE`` are not compared, and must be
  under 1% of the image.
* Pixels the reference flags as ``ambiguous`` (a skip/stop decision of the
  compositing loop within rounding noise, where a whole Gaussian may flip) are
  not compared either, and must be under 1% of the image (see raster_reference).

The render is pinned to ``--device cpu`` (the torch rasterizer): the CUDA path is
checked against the same reference by test_raster_cuda_parity.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytest
import torch
from gsplat.cuda._torch_impl import _spherical_harmonics

from gs_backend.cli import main
from gs_backend.gaussians import Gaussians
from gs_backend.io.inria_ply import save_inria_ply
from tests.raster_reference import ReferenceImage, reference_rasterize
from tests.scenario_factory import blob

WIDTH, HEIGHT = 64, 48
K = [[70.0, 0.0, 31.0], [0.0, 68.0, 25.0], [0.0, 0.0, 1.0]]
BACKGROUND = (0.15, 0.45, 0.8)
MASK_THRESHOLD = 0.5
VALUE_NOISE = 1e-5
"""Bound on the float32 noise of the backend's colours and weights (measured ~1e-6)."""
MAX_UNCERTAIN_FRACTION = 0.01
MAX_ROUNDING_FRACTION = 0.02


# --- independent geometry -----------------------------------------------------------------


def axis_angle_quat(axis: tuple[float, float, float], degrees: float) -> np.ndarray:
    """Unit quaternion (wxyz) of a rotation by ``degrees`` about ``axis``."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    half = math.radians(degrees) / 2
    return np.concatenate([[math.cos(half)], math.sin(half) * a])


def quat_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion (wxyz)."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def quat_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b of wxyz quaternions (broadcasting)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def look_at(eye: tuple[float, float, float],
            target: tuple[float, float, float]) -> np.ndarray:
    """world_to_camera (OpenCV axes: x right, y down, z forward), world up = +y."""
    eye_v = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye_v
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    m = np.eye(4)
    m[:3, :3] = np.stack([right, down, forward])
    m[:3, 3] = -m[:3, :3] @ eye_v
    return m


class Pose(NamedTuple):
    """x -> scale * R(quat) x + translation."""

    scale: float
    quat: np.ndarray  # [4] wxyz
    translation: tuple[float, float, float]

    def matrix(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.scale * quat_matrix(self.quat)
        m[:3, 3] = self.translation
        return m


class Spec(NamedTuple):
    """A scenario as the test knows it: assets, objects in file order, frames."""

    assets: dict[str, Gaussians]
    objects: dict[str, str]  # object name -> asset name; "scene" is the background
    frames: dict[str, tuple[np.ndarray, dict[str, Pose]]]  # name -> (world_to_camera, poses)

    @property
    def instruments(self) -> list[str]:
        """Instrument objects in file order: instance id = position + 1."""
        return [name for name in self.objects if name != "scene"]


def posed_features(g: Gaussians, pose: Pose, channel: int | None, camera_center: np.ndarray,
                   num_channels: int) -> tuple[torch.Tensor, ...]:
    """World-space (means, quats, scales, opacities, features) of one object, float64.

    features = [rgb, one weight column per instrument]; rgb from the *original* SH
    evaluated at R^T (mean - camera centre); the object's column (if any) is 1.
    """
    s, q_r = pose.scale, torch.from_numpy(pose.quat)
    rotation = torch.from_numpy(quat_matrix(pose.quat))
    means = s * g.means.double() @ rotation.T + torch.tensor(pose.translation,
                                                              dtype=torch.float64)
    quats = torch.nn.functional.normalize(quat_product(q_r, g.quats.double()), dim=-1)
    scales = s * g.scales.double()
    local_view = (means - torch.from_numpy(camera_center)) @ rotation  # rows: R^T d
    sh = g.sh.double()
    degree = math.isqrt(sh.shape[1]) - 1
    rgb = (_spherical_harmonics(degree, local_view, sh) + 0.5).clamp_min(0.0)
    weights = torch.zeros(g.means.shape[0], num_channels, dtype=torch.float64)
    if channel is not None:
        weights[:, channel] = 1.0
    return means, quats, scales, g.opacities.double(), torch.cat([rgb, weights], dim=1)


def reference_view(parts: list[tuple[Gaussians, Pose, int | None]], world_to_camera: np.ndarray,
                   num_channels: int, background: torch.Tensor | None) -> ReferenceImage:
    """Pose ``parts`` (asset, pose, weight channel) and render them with the reference."""
    rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
    camera_center = -rotation.T @ translation
    posed = [posed_features(g, pose, channel, camera_center, num_channels)
             for g, pose, channel in parts]
    means, quats, scales, opacities, features = (torch.cat(t) for t in zip(*posed, strict=True))
    return reference_rasterize(
        means, quats, scales, opacities, features,
        torch.from_numpy(world_to_camera), torch.tensor(K, dtype=torch.float64),
        WIDTH, HEIGHT, background=background)


def expected_frame(spec: Spec, frame: str) -> ReferenceImage:
    """The whole frame: colours ``[H, W, 3 + instruments]``, background included."""
    world_to_camera, poses = spec.frames[frame]
    instruments = spec.instruments
    parts = [(spec.assets[asset], poses[name],
              instruments.index(name) if name in instruments else None)
             for name, asset in spec.objects.items() if name in poses]
    background = torch.zeros(3 + len(instruments), dtype=torch.float64)
    background[:3] = torch.tensor(BACKGROUND)
    return reference_view(parts, world_to_camera, len(instruments), background)


def expected_alone(spec: Spec, frame: str, name: str) -> ReferenceImage:
    """One instrument rendered alone, no background: its opacity is ``alphas``."""
    world_to_camera, poses = spec.frames[frame]
    return reference_view([(spec.assets[spec.objects[name]], poses[name], None)],
                          world_to_camera, 0, None)


# --- assets, scenario, render -------------------------------------------------------------


def tissue_asset() -> Gaussians:
    """A patch smaller than the views, so the background shows around and through it."""
    return blob(300, (0.0, 0.0, 0.0), (0.6, 0.5, 0.02), (0.8, 0.4, 0.4), scale=0.03, seed=11)


def tool_asset(seed: int, rgb: tuple[float, float, float]) -> Gaussians:
    """A shiny rod along x: SH degree 3 with strong view-dependent bands."""
    g = blob(120, (0.0, 0.0, 0.0), (0.3, 0.04, 0.04), rgb, scale=0.015, seed=seed,
             sh_degree=3)
    sh = g.sh.clone()
    gen = torch.Generator().manual_seed(seed + 1000)
    sh[:, 1:] = 0.3 * torch.randn(sh[:, 1:].shape, generator=gen)
    return Gaussians(g.means, g.quats, g.scales, g.opacities, sh)


def render(spec: Spec, folder: Path, output: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Write the assets and the scenario, run ``gs-backend render``; return (out, frames)."""
    (folder / "assets").mkdir(parents=True)
    for name, g in spec.assets.items():
        save_inria_ply(folder / "assets" / f"{name}.ply", g)
    objects = {name: ({"asset": asset, "role": "background"} if name == "scene" else
                      {"asset": asset, "role": "instrument", "class": "tool"})
               for name, asset in spec.objects.items()}
    data = {
        "format": "gs-scenario", "version": 1, "classes": ["tool"],
        "assets": {name: {"ply": f"assets/{name}.ply"} for name in spec.assets},
        "objects": objects,
        "render": {"background": list(BACKGROUND)},
        "output": {"mask_threshold": MASK_THRESHOLD, "min_visible_pixels": 1,
                   "val_fraction": 0.0, **output},
        "frames": [{"name": name,
                    "camera": {"width": WIDTH, "height": HEIGHT, "K": K,
                               "world_to_camera": w2c.tolist()},
                    "poses": {obj: pose.matrix().tolist() for obj, pose in poses.items()}}
                   for name, (w2c, poses) in spec.frames.items()],
    }
    scenario = folder / "scenario.json"
    scenario.write_text(json.dumps(data))
    out = folder / "out"
    assert main(["render", str(scenario), "--out", str(out), "--device", "cpu",
                 "--progress", "none"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"]
    return out, {f["name"]: f for f in manifest["frames"]}


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


TISSUE_POSE = Pose(1.0, np.array([1.0, 0.0, 0.0, 0.0]), (0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def shiny(tmp_path_factory) -> tuple[Spec, Path, dict[str, Any]]:
    """One shiny degree-3 instrument, rotated and scaled, over tissue; oblique cameras
    away from the origin; a non-zero background."""
    spec = Spec(
        assets={"tissue": tissue_asset(), "tool": tool_asset(21, (0.6, 0.6, 0.7))},
        objects={"scene": "tissue", "driver": "tool"},
        frames={
            "frame_a": (look_at((0.25, -0.15, 0.9), (0.05, 0.0, 0.0)), {
                "scene": TISSUE_POSE,
                "driver": Pose(1.25, axis_angle_quat((0.3, 0.5, 0.8), 120.0),
                               (0.05, 0.02, 0.15))}),
            "frame_b": (look_at((-0.2, 0.1, 0.8), (0.0, 0.0, 0.05)), {
                "scene": TISSUE_POSE,
                "driver": Pose(0.9, axis_angle_quat((-0.6, 0.2, 0.7), 200.0),
                               (-0.05, 0.0, 0.12))}),
        },
    )
    out, frames = render(spec, tmp_path_factory.mktemp("shiny"), {})
    return spec, out, frames


@pytest.fixture(scope="module")
def crossing(tmp_path_factory) -> tuple[Spec, Path, dict[str, Any]]:
    """Two instruments crossing: "upper" partly hides "lower"; amodal masks on."""
    spec = Spec(
        assets={"tissue": tissue_asset(), "rod_a": tool_asset(31, (0.7, 0.7, 0.6)),
                "rod_b": tool_asset(41, (0.3, 0.5, 0.8))},
        objects={"scene": "tissue", "lower": "rod_a", "upper": "rod_b"},
        frames={
            "frame_a": (look_at((0.1, -0.2, 0.9), (0.0, 0.0, 0.1)), {
                "scene": TISSUE_POSE,
                "lower": Pose(1.0, axis_angle_quat((0.1, 0.2, 1.0), 25.0), (0.0, 0.0, 0.08)),
                "upper": Pose(1.2, axis_angle_quat((0.2, 0.3, 1.0), 100.0),
                              (0.02, -0.01, 0.22))}),
        },
    )
    out, frames = render(spec, tmp_path_factory.mktemp("crossing"), {"amodal": True})
    return spec, out, frames


@pytest.fixture(scope="module")
def coming_and_going(tmp_path_factory) -> tuple[Spec, Path, dict[str, Any]]:
    """Instruments leave, come back and move while others stay put, over consecutive
    frames of one render (the renderer reuses what did not change between frames)."""
    lower_a = Pose(1.0, axis_angle_quat((0.1, 0.2, 1.0), 25.0), (0.0, 0.0, 0.08))
    upper_a = Pose(1.2, axis_angle_quat((0.2, 0.3, 1.0), 100.0), (0.02, -0.01, 0.22))
    upper_b = Pose(0.8, axis_angle_quat((0.5, -0.3, 1.0), 160.0), (-0.03, 0.02, 0.2))
    upper_d = Pose(1.1, axis_angle_quat((0.0, 0.4, 1.0), 60.0), (0.04, 0.03, 0.18))
    camera = look_at((0.1, -0.2, 0.9), (0.0, 0.0, 0.1))
    spec = Spec(
        assets={"tissue": tissue_asset(), "rod_a": tool_asset(31, (0.7, 0.7, 0.6)),
                "rod_b": tool_asset(41, (0.3, 0.5, 0.8))},
        objects={"scene": "tissue", "lower": "rod_a", "upper": "rod_b"},
        frames={
            "frame_a": (camera, {"scene": TISSUE_POSE, "lower": lower_a, "upper": upper_a}),
            "frame_b": (camera, {"scene": TISSUE_POSE, "upper": upper_b}),
            "frame_c": (look_at((-0.1, 0.1, 0.85), (0.0, 0.0, 0.1)),
                        {"scene": TISSUE_POSE, "lower": lower_a, "upper": upper_b}),
            "frame_d": (camera, {"scene": TISSUE_POSE, "lower": lower_a, "upper": upper_d}),
        },
    )
    out, frames = render(spec, tmp_path_factory.mktemp("coming_and_going"), {})
    return spec, out, frames


# --- checks ---------------------------------------------------------------------------------


def uncertain_decisions(weights: np.ndarray) -> np.ndarray:
    """Pixels where the contract 4 mask rule is within float noise of another outcome."""
    order = np.sort(weights, axis=-1)
    best = order[..., -1]
    near_threshold = np.abs(best - MASK_THRESHOLD) <= VALUE_NOISE
    near_tie = np.zeros_like(near_threshold)
    if weights.shape[-1] > 1:
        near_tie = (best >= MASK_THRESHOLD - VALUE_NOISE) & (
            order[..., -1] - order[..., -2] <= VALUE_NOISE)
    return near_threshold | near_tie


def expected_instance_map(weights: np.ndarray) -> np.ndarray:
    """Contract 4: id of the largest weight (lowest id on ties) if it reaches the threshold."""
    ids = np.argmax(weights, axis=-1) + 1
    return np.where(weights.max(axis=-1) >= MASK_THRESHOLD, ids, 0)


def check_rgb(expected: ReferenceImage, png: np.ndarray) -> None:
    assert png.dtype == np.uint8 and png.shape == (HEIGHT, WIDTH, 3)
    rgb = png[..., ::-1].astype(np.int64)  # OpenCV reads BGR
    clear = ~expected.ambiguous.numpy()
    assert 1 - clear.mean() <= MAX_UNCERTAIN_FRACTION
    levels = np.clip(expected.colors[..., :3].double().numpy(), 0.0, 1.0) * 255.0
    want = np.rint(levels).astype(np.int64)
    near_half = np.abs(levels - np.floor(levels) - 0.5) <= VALUE_NOISE * 255.0
    assert near_half.mean() <= MAX_ROUNDING_FRACTION
    diff = np.abs(rgb - want)[clear]
    exact = ~near_half[clear]
    assert np.array_equal(rgb[clear][exact], want[clear][exact]), (
        f"{int((diff[exact] > 0).sum())} of {int(exact.sum())} channels differ, "
        f"by up to {int(diff.max())} levels")
    assert diff.max(initial=0) <= 1


def check_visible_mask(expected: ReferenceImage, mask: np.ndarray, instances: int) -> None:
    assert mask.dtype == np.uint16 and mask.shape == (HEIGHT, WIDTH)
    weights = expected.colors[..., 3:3 + instances].double().numpy()
    skip = expected.ambiguous.numpy() | uncertain_decisions(weights)
    assert skip.mean() <= MAX_UNCERTAIN_FRACTION
    want = expected_instance_map(weights)
    assert np.array_equal(mask[~skip], want[~skip]), (
        f"{int((mask != want)[~skip].sum())} pixels differ")


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scene", ["shiny", "crossing", "coming_and_going"])
def test_image_pixels_match_independent_render(scene, request):
    spec, out, frames = request.getfixturevalue(scene)
    for name in spec.frames:
        expected = expected_frame(spec, name)
        # The scenario shows background (alone and through the tissue) and instruments.
        assert (expected.alphas.numpy() < 0.5).mean() > 0.05
        assert (expected.colors[..., 3:].numpy() >= MASK_THRESHOLD).sum() > 100
        check_rgb(expected, read_png(out / frames[name]["image"]))


@pytest.mark.parametrize("scene", ["shiny", "crossing", "coming_and_going"])
def test_visible_mask_matches_independent_weights(scene, request):
    spec, out, frames = request.getfixturevalue(scene)
    for name in spec.frames:
        expected = expected_frame(spec, name)
        mask = read_png(out / frames[name]["mask"])
        check_visible_mask(expected, mask, len(spec.instruments))
        for inst in frames[name]["instances"]:
            assert inst["visible_pixels"] == int((mask == inst["id"]).sum())


def test_amodal_masks_are_instruments_rendered_alone(crossing):
    spec, out, frames = crossing
    fractions = []
    for name in spec.frames:
        frame = frames[name]
        mask = read_png(out / frame["mask"])
        assert {i["object"] for i in frame["instances"]} == set(spec.instruments)
        for inst in frame["instances"]:
            alone = expected_alone(spec, name, inst["object"])
            opacity = alone.alphas.double().numpy()
            skip = alone.ambiguous.numpy() | (np.abs(opacity - MASK_THRESHOLD) <= VALUE_NOISE)
            assert skip.mean() <= MAX_UNCERTAIN_FRACTION
            amodal = read_png(out / frame["amodal"][str(inst["id"])])
            assert amodal.dtype == np.uint8 and set(np.unique(amodal)) <= {0, 255}
            want = opacity >= MASK_THRESHOLD
            assert np.array_equal(amodal[~skip] == 255, want[~skip]), (
                f"{inst['object']}: {int(((amodal == 255) != want)[~skip].sum())} pixels differ")
            visible = int((mask == inst["id"]).sum())
            amodal_pixels = int((amodal == 255).sum())
            assert np.all(amodal[mask == inst["id"]] == 255)
            assert inst["visible_pixels"] == visible > 0
            assert inst["amodal_pixels"] == amodal_pixels
            assert inst["visible_fraction"] == pytest.approx(visible / amodal_pixels, abs=1e-12)
            fractions.append((inst["object"], inst["visible_fraction"]))
    # "upper" lies over "lower": the lower rod is partly hidden, the upper one is not.
    by_object = dict(fractions)
    assert by_object["lower"] < 0.9
    assert by_object["upper"] > 0.97
