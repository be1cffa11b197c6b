"""Tiny scenarios built on the fly for tests (no bundled binary data)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gs_backend.gaussians import SH_C0, Gaussians
from gs_backend.io.inria_ply import save_inria_ply

WIDTH, HEIGHT = 64, 48
K = [[70.0, 0.0, 32.0], [0.0, 70.0, 24.0], [0.0, 0.0, 1.0]]


def blob(count: int, center: tuple[float, float, float], extent: tuple[float, float, float],
         rgb: tuple[float, float, float], *, scale: float, seed: int,
         sh_degree: int = 1, opacity: float = 0.95) -> Gaussians:
    """Gaussians filling a box around ``center`` with a base colour."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.tensor(center) + (torch.rand(count, 3, generator=gen) - 0.5) * torch.tensor(
        extent)
    quats = torch.nn.functional.normalize(torch.randn(count, 4, generator=gen), dim=1)
    scales = torch.full((count, 3), scale) * (0.7 + 0.6 * torch.rand(count, 3, generator=gen))
    opacities = torch.full((count,), opacity)
    k = (sh_degree + 1) ** 2
    sh = 0.05 * torch.randn(count, k, 3, generator=gen)
    sh[:, 0] = (torch.tensor(rgb) - 0.5) / SH_C0
    return Gaussians(means, quats, scales, opacities, sh)


def look_down(height: float, x: float = 0.0, y: float = 0.0) -> list[list[float]]:
    """world_to_camera for a camera at (x, y, height) looking down -z (OpenCV axes)."""
    R = np.diag([1.0, -1.0, -1.0])
    t = -R @ np.array([x, y, height])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = R, t
    return m.tolist()


def translation(x: float, y: float, z: float, yaw: float = 0.0) -> list[list[float]]:
    c, s = math.cos(yaw), math.sin(yaw)
    return [[c, -s, 0, x], [s, c, 0, y], [0, 0, 1, z], [0, 0, 0, 1]]


def write_assets(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_inria_ply(folder / "tissue.ply",
                   blob(400, (0, 0, 0), (1.0, 0.8, 0.02), (0.8, 0.4, 0.4), scale=0.03, seed=1))
    save_inria_ply(folder / "tool.ply",
                   blob(150, (0, 0, 0), (0.3, 0.04, 0.04), (0.6, 0.6, 0.7), scale=0.015,
                        seed=2, sh_degree=3))


def scenario_dict(frames: int = 4) -> dict[str, Any]:
    """Two instruments over a tissue plane; the second leaves the view in frame 2 and
    is absent from the last frame's poses."""
    out: dict[str, Any] = {
        "format": "gs-scenario", "version": 1,
        "classes": ["needle_driver", "grasper"],
        "assets": {"tissue": {"ply": "assets/tissue.ply"}, "tool": {"ply": "assets/tool.ply"}},
        "objects": {
            "scene": {"asset": "tissue", "role": "background"},
            "driver": {"asset": "tool", "role": "instrument", "class": "needle_driver"},
            "grasper": {"asset": "tool", "role": "instrument", "class": "grasper"},
        },
        "output": {"min_visible_pixels": 5},
        "frames": [],
    }
    for i in range(frames):
        poses = {
            "scene": np.eye(4).tolist(),
            "driver": translation(-0.1 + 0.05 * i, 0.05, 0.1, yaw=0.3 * i),
            "grasper": translation(0.1, -0.08 if i != 2 else 5.0, 0.15, yaw=-0.5),
        }
        if i == frames - 1:
            del poses["grasper"]
        out["frames"].append({
            "name": f"frame_{i + 1:04d}",
            "camera": {"width": WIDTH, "height": HEIGHT, "K": K,
                       "world_to_camera": look_down(1.0, x=0.02 * i)},
            "poses": poses,
        })
    return out


def write_scenario(folder: Path, data: dict[str, Any] | None = None, *,
                   frames: int = 4) -> Path:
    """Assets + scenario.json in ``folder``; returns the scenario path."""
    write_assets(folder / "assets")
    path = folder / "scenario.json"
    path.write_text(json.dumps(data if data is not None else scenario_dict(frames)))
    return path


def modified(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with ``dotted`` (e.g. ``frames.0.camera.K``) set to ``value``;
    ``value=DELETE`` removes the key."""
    data = copy.deepcopy(data)
    keys = dotted.split(".")
    node = data
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node.setdefault(k, {})
    last = keys[-1]
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()
