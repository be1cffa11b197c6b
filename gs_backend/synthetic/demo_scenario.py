"""The bundled demo: synthetic assets plus a laparoscopic ``gs-scenario`` v1 file.

World frame: metres, z up, the tissue patch centred at the origin. A laparoscope
sweeps a slow arc over the tissue (12-15 cm away, slight roll). Two instruments
enter through fixed ports (their shafts always pass through the port, as through
a trocar): the needle driver sweeps in and turns about its shaft, so its
highlights travel; the grasper is absent from the first frames, then enters,
crosses in front of the driver and leaves the view again at the end.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gs_backend.gaussians import Gaussians
from gs_backend.io.inria_ply import save_inria_ply
from gs_backend.synthetic.demo_captures import CAPTURE_DIR, instrument_from_capture
from gs_backend.synthetic.instrument import make_needle_driver
from gs_backend.synthetic.tissue import make_tissue
from gs_contract.atomic import write_text_atomic
from gs_contract.scenario import (
    ROLE_BACKGROUND,
    ROLE_INSTRUMENT,
    SCENARIO_FORMAT,
    SCENARIO_VERSION,
    blender_frame_name,
    output_defaults,
    render_defaults,
)

SCENARIO_NAME = "scenario.json"
ASSET_DIR = "assets"
ASSET_STAMP = "assets/params.json"
INSTRUMENT_ASSETS = ("needle_driver", "grasper")  # made from raw captures by extraction
ASSET_GENERATOR_VERSION = 1
CLASSES = ("needle_driver", "grasper")
HORIZONTAL_FOV_DEG = 70.0

# Trocar ports (world, metres): the driver enters from the camera's left, the
# grasper from its right.
DRIVER_PORT = np.array([-0.14, -0.06, 0.11])
GRASPER_PORT = np.array([0.15, -0.03, 0.10])
CAMERA_DISTANCE_M = (0.15, 0.125)  # start, end of the sweep
GRASPER_ABSENT_FRACTION = 0.06  # the grasper is not in `poses` while s < this


@dataclass(frozen=True)
class DemoAssetParams:
    """Everything that determines the demo's asset files (stored as a stamp)."""

    tissue_count: int
    tissue_seed: int
    tissue_size_m: float
    instrument_count: int
    driver_seed: int
    driver_jaw_opening_deg: float
    grasper_seed: int
    grasper_jaw_opening_deg: float
    generator_version: int = ASSET_GENERATOR_VERSION


def build_demo(
    out_dir: Path,
    *,
    frames: int = 24,
    width: int = 640,
    height: int = 480,
    tissue_count: int = 150_000,
    instrument_count: int = 25_000,
) -> Path:
    """Write the demo's assets and ``scenario.json`` into ``out_dir``; return the scenario path.

    Layout: ``out_dir/assets/{tissue,needle_driver,grasper}.ply``, a parameter stamp
    ``out_dir/assets/params.json`` and ``out_dir/scenario.json`` (asset paths relative
    to it). The instruments are extracted from raw captures in ``out_dir/captures/``
    (``<name>.ply`` and the extraction report ``<name>.extract.json``). Assets whose
    stamp matches are kept, not regenerated; the scenario is deterministic, so
    re-running gives the same file and a resumable render.
    """
    out_dir = Path(out_dir)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    params = DemoAssetParams(
        tissue_count=tissue_count, tissue_seed=0, tissue_size_m=0.24,
        instrument_count=instrument_count, driver_seed=1, driver_jaw_opening_deg=14.0,
        grasper_seed=2, grasper_jaw_opening_deg=38.0,
    )
    _write_assets(out_dir, params)
    scenario = demo_scenario_dict(frames=frames, width=width, height=height)
    path = out_dir / SCENARIO_NAME
    write_text_atomic(path, scenario_json_text(scenario))
    return path


def _write_assets(out_dir: Path, params: DemoAssetParams) -> None:
    stamp_path = out_dir / ASSET_STAMP
    stamp = json.dumps(asdict(params), indent=1, sort_keys=True) + "\n"
    makers: dict[str, Callable[[], Gaussians]] = {
        "tissue": lambda: make_tissue(params.tissue_count, seed=params.tissue_seed,
                                      size_m=params.tissue_size_m),
        "needle_driver": lambda: make_needle_driver(
            params.instrument_count, seed=params.driver_seed,
            jaw_opening_deg=params.driver_jaw_opening_deg),
        "grasper": lambda: make_needle_driver(
            params.instrument_count, seed=params.grasper_seed,
            jaw_opening_deg=params.grasper_jaw_opening_deg),
    }
    files = {name: out_dir / ASSET_DIR / f"{name}.ply" for name in makers}
    # The instruments come as raw captures (table, room, floaters, halos) and are
    # extracted into their assets, as a lab's would be (gs-backend extract).
    captures = {name: out_dir / CAPTURE_DIR / f"{name}.ply" for name in INSTRUMENT_ASSETS}
    up_to_date = (stamp_path.is_file() and stamp_path.read_text(encoding="utf-8") == stamp
                  and all(f.is_file() for f in [*files.values(), *captures.values()]))
    if up_to_date:
        return
    stamp_path.unlink(missing_ok=True)  # an interrupted rebuild must not look finished
    for index, (name, make) in enumerate(makers.items()):
        if name in captures:
            instrument_from_capture(make(), seed=index, capture=captures[name],
                                    asset=files[name])
        else:
            save_inria_ply(files[name], make())
    write_text_atomic(stamp_path, stamp)


# ---------------------------------------------------------------------------
# the scenario

_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-+0-9.eE]*(?:,\s*-?[0-9][-+0-9.eE]*)*)\s*\]")


def scenario_json_text(scenario: dict[str, Any]) -> str:
    """Indented JSON with every list of numbers (a matrix row, a colour) on one line."""
    text = json.dumps(scenario, indent=1)
    return _NUMBER_LIST.sub(lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text) + "\n"


def demo_scenario_dict(*, frames: int = 24, width: int = 640, height: int = 480) -> dict[str, Any]:
    """The demo scenario as a JSON-ready dict (gs-scenario v1), assets under ``assets/``."""
    K = intrinsics(width, height, HORIZONTAL_FOV_DEG)
    frame_list = []
    for i in range(frames):
        s = i / max(frames - 1, 1)  # clip time in [0, 1]
        poses = {"tissue": np.eye(4), "driver": driver_pose(s)}
        if s >= GRASPER_ABSENT_FRACTION:
            poses["grasper"] = grasper_pose(s)
        frame_list.append({
            "name": blender_frame_name(i + 1),  # as the .blend made of it exports them
            "camera": {"width": width, "height": height, "K": _rounded(K),
                       "world_to_camera": _rounded(world_to_camera(s))},
            "poses": {name: _rounded(m) for name, m in poses.items()},
        })
    return {
        "format": SCENARIO_FORMAT,
        "version": SCENARIO_VERSION,
        "classes": list(CLASSES),
        "assets": {name: {"ply": f"{ASSET_DIR}/{name}.ply"}
                   for name in ("tissue", "needle_driver", "grasper")},
        "objects": {
            "tissue": {"asset": "tissue", "role": ROLE_BACKGROUND},
            "driver": {"asset": "needle_driver", "role": ROLE_INSTRUMENT,
                       "class": "needle_driver"},
            "grasper": {"asset": "grasper", "role": ROLE_INSTRUMENT, "class": "grasper"},
        },
        "render": render_defaults(),
        "output": output_defaults(),
        "frames": frame_list,
    }


def intrinsics(width: int, height: int, horizontal_fov_deg: float) -> np.ndarray:
    """Pinhole ``K`` ``[3, 3]`` with square pixels and the principal point at the centre."""
    f = 0.5 * width / math.tan(math.radians(horizontal_fov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def camera_center(s: float) -> np.ndarray:
    """World position ``[3]`` of the laparoscope's lens at clip time ``s`` in [0, 1]."""
    azimuth = math.radians(-90.0 + 28.0 * math.sin(math.pi * (s - 0.5)))
    elevation = math.radians(60.0 - 6.0 * s)
    distance = CAMERA_DISTANCE_M[0] + (CAMERA_DISTANCE_M[1] - CAMERA_DISTANCE_M[0]) * s
    direction = np.array([math.cos(elevation) * math.cos(azimuth),
                          math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
    return camera_target(s) + distance * direction


def camera_target(s: float) -> np.ndarray:
    """The point ``[3]`` the laparoscope looks at."""
    return np.array([0.012 * math.sin(2.0 * s), 0.004 + 0.01 * s, 0.0])


def world_to_camera(s: float) -> np.ndarray:
    """``[4, 4]`` world -> camera (OpenCV axes: x right, y down, z forward)."""
    roll = math.radians(5.0 * math.sin(2 * math.pi * s))
    return look_at(camera_center(s), camera_target(s), roll_rad=roll)


def look_at(eye: np.ndarray, target: np.ndarray, *, roll_rad: float = 0.0,
            up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World -> camera ``[4, 4]`` (OpenCV axes) of a camera at ``eye`` looking at ``target``,
    with world ``up`` pointing up in the image, then rolled by ``roll_rad`` about the view axis."""
    forward = _unit(target - eye)
    right = _unit(np.cross(forward, np.asarray(up, dtype=np.float64)))
    down = np.cross(forward, right)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    right, down = c * right + s * down, -s * right + c * down
    rotation = np.stack([right, down, forward])  # rows: camera axes in world
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = -rotation @ eye
    return out


def driver_pose(s: float) -> np.ndarray:
    """Needle driver ``[4, 4]`` asset -> world: sweeps in, then works and turns about its shaft."""
    work = np.array([-0.012 + 0.03 * s, 0.012 * math.sin(math.pi * s), 0.036])
    insertion = 0.35 + 0.65 * _smoothstep(0.0, 0.3, s)
    tip = DRIVER_PORT + insertion * (work - DRIVER_PORT)
    roll = math.radians(-40.0 + 320.0 * s)
    return instrument_pose(tip, DRIVER_PORT, roll)


def grasper_pose(s: float) -> np.ndarray:
    """Grasper ``[4, 4]`` asset -> world: enters, crosses over the driver, retracts."""
    driver_tip = driver_pose(s)[:3, 3]
    work = driver_tip + np.array([0.002, 0.016 - 0.03 * _smoothstep(0.4, 0.7, s),
                                  0.012])
    insertion = (0.1 + 0.9 * _smoothstep(GRASPER_ABSENT_FRACTION + 0.05, 0.45, s)
                 - 0.6 * _smoothstep(0.8, 0.95, s))
    tip = GRASPER_PORT + insertion * (work - GRASPER_PORT)
    roll = math.radians(70.0 - 50.0 * s)
    return instrument_pose(tip, GRASPER_PORT, roll)


def instrument_pose(tip: np.ndarray, port: np.ndarray, roll_rad: float) -> np.ndarray:
    """``[4, 4]`` rigid pose putting the instrument's tip (local origin) at ``tip`` with its
    shaft (local +x) through ``port``, turned by ``roll_rad`` about the shaft.

    At zero roll the jaws open in the vertical plane through the shaft (local +z as
    close to world up as the shaft allows).
    """
    x_axis = _unit(port - tip)
    z_axis = _unit(np.array([0.0, 0.0, 1.0]) - x_axis[2] * x_axis)
    y_axis = np.cross(z_axis, x_axis)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    y_axis, z_axis = c * y_axis + s * z_axis, -s * y_axis + c * z_axis
    out = np.eye(4)
    out[:3, :3] = np.stack([x_axis, y_axis, z_axis], axis=1)  # columns: local axes in world
    out[:3, 3] = tip
    return out


def _smoothstep(edge0: float, edge1: float, x: float) -> float:
    t = min(max((x - edge0) / (edge1 - edge0), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rounded(m: np.ndarray) -> list[list[float]]:
    """Row-major nested lists, rounded to 1e-10 (a tenth of a nanometre) for a tidy file."""
    return [[round(float(x), 10) + 0.0 for x in row] for row in np.asarray(m)]
