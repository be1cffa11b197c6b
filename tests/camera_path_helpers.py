"""A known synthetic camera set, written as COLMAP models by pycolmap (an independent
writer) and as a nerfstudio transforms.json by nerfstudio's own recipe (written out
here from its ``colmap_to_json``: camera axes flipped, world axes permuted)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# nerfstudio's applied_transform for COLMAP data (colmap_utils.colmap_to_json).
NERFSTUDIO_APPLIED = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


@dataclass(frozen=True)
class KnownCamera:
    name: str
    model: str  # COLMAP model name
    params: tuple[float, ...]
    width: int
    height: int
    K: np.ndarray  # [3, 3], what the reader must return
    world_to_camera: np.ndarray  # [4, 4] OpenCV


def rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix of ``angle`` radians about ``axis`` (Rodrigues' formula)."""
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def known_cameras(seed: int = 0) -> list[KnownCamera]:
    """Five cameras with different intrinsics and models, names deliberately not in id
    order: (model, params) -> K by COLMAP's documented parameter order."""
    rng = np.random.default_rng(seed)
    specs = [
        ("view_c.png", "PINHOLE", (510.0, 490.0, 320.5, 239.25), 640, 480),
        ("view_a.png", "SIMPLE_PINHOLE", (600.0, 400.0, 300.0), 800, 600),
        ("view_e.jpg", "PINHOLE", (70.0, 71.5, 32.0, 24.0), 64, 48),
        ("view_b.png", "SIMPLE_RADIAL", (450.0, 330.0, 250.0, 0.0), 660, 500),
        ("view_d.png", "OPENCV", (300.0, 310.0, 160.0, 120.0, 0.0, 0.0, 0.0, 0.0), 320, 240),
    ]
    out = []
    for name, model, params, w, h in specs:
        if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL"):
            fx = fy = params[0]
            cx, cy = params[1], params[2]
        else:
            fx, fy, cx, cy = params[:4]
        K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
        w2c = np.eye(4)
        w2c[:3, :3] = rodrigues(rng.normal(size=3), rng.uniform(0.2, 3.0))
        w2c[:3, 3] = rng.normal(size=3) * 2
        out.append(KnownCamera(name, model, params, w, h, K, w2c))
    return out


def write_colmap(folder: Path, cameras: list[KnownCamera], *, text: bool,
                 with_keypoints: bool = True) -> Path:
    """Write ``cameras`` as a COLMAP model with pycolmap (one camera per image, ids in
    list order, image ids from 11 on); returns ``folder``."""
    import pycolmap

    rec = pycolmap.Reconstruction()
    for i, cam in enumerate(cameras, start=1):
        camera = pycolmap.Camera.create_from_model_name(i, cam.model, 1.0, cam.width,
                                                        cam.height)
        camera.params = list(cam.params)
        rec.add_camera_with_trivial_rig(camera)
        keypoints = np.arange(2 * 3 * i, dtype=np.float64).reshape(-1, 2) if with_keypoints \
            else np.zeros((0, 2))
        image = pycolmap.Image(name=cam.name, keypoints=keypoints, camera_id=i,
                               image_id=10 + i)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(cam.world_to_camera[:3, :3]),
                                cam.world_to_camera[:3, 3])
        rec.add_image_with_trivial_frame(image, pose)
    folder.mkdir(parents=True, exist_ok=True)
    (rec.write_text if text else rec.write_binary)(str(folder))
    return folder


def nerfstudio_c2w(world_to_camera: np.ndarray, *, applied: bool = True) -> np.ndarray:
    """nerfstudio's transform_matrix of a COLMAP pose, by its colmap_to_json recipe."""
    c2w = np.linalg.inv(world_to_camera)
    c2w[0:3, 1:3] *= -1
    if applied:
        c2w = c2w[np.array([0, 2, 1, 3]), :]
        c2w[2, :] *= -1
    return c2w


def write_transforms(path: Path, cameras: list[KnownCamera], *, per_frame: bool = True,
                     applied: bool = True, extra: dict | None = None) -> Path:
    """A transforms.json of ``cameras`` (per-frame intrinsics unless ``per_frame`` is
    False, then the first camera's as the top-level ones)."""
    frames = []
    for cam in cameras:
        frame = {"file_path": f"./images/{cam.name}",
                 "transform_matrix": nerfstudio_c2w(cam.world_to_camera,
                                                    applied=applied).tolist()}
        if per_frame:
            frame.update(fl_x=cam.K[0, 0], fl_y=cam.K[1, 1], cx=cam.K[0, 2], cy=cam.K[1, 2],
                         w=cam.width, h=cam.height)
        frames.append(frame)
    meta: dict = {"camera_model": "OPENCV", "frames": frames}
    if not per_frame:
        c = cameras[0]
        meta.update(fl_x=c.K[0, 0], fl_y=c.K[1, 1], cx=c.K[0, 2], cy=c.K[1, 2], w=c.width,
                    h=c.height, k1=0.0, k2=0.0, p1=0.0, p2=0.0)
    if applied:
        meta["applied_transform"] = NERFSTUDIO_APPLIED[:3].tolist()
    meta.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=1))
    return path


def project(K: np.ndarray, world_to_camera: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Pixel ``[2]`` of a world point through a pinhole camera."""
    x = world_to_camera[:3, :3] @ point + world_to_camera[:3, 3]
    uv = K @ x
    return uv[:2] / uv[2]
