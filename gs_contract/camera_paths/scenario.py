"""Registered images + a base scenario -> a gs-scenario with one frame per image.

The base gives ``classes``, ``assets``, ``objects``, ``render``, ``output`` (and ``meta``).
Every frame poses the objects alike: with the base's first frame's poses when the base has
frames, else with the identity for every object (each asset where its PLY puts it, which
is right for a scene splat trained from the same capture as the cameras).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.camera_paths.model import RegisteredImage
from gs_contract.errors import InputError
from gs_contract.jsonfile import JsonValidator, read_json_file
from gs_contract.scenario import (
    FRAME_NAME_RULE,
    is_valid_frame_name,
    load_scenario,
    parse_scenario,
)


@dataclass(frozen=True)
class CameraPathScenario:
    """Attributes:
        scenario: a complete gs-scenario v1 dict (JSON-ready), asset and keep paths
            ABSOLUTE.
        poses_from: the base frame whose poses every frame uses; None: identity poses.
    """

    scenario: dict[str, Any]
    poses_from: str | None


def camera_path_scenario(base: str | Path, images: list[RegisteredImage], *,
                         source: str | Path) -> CameraPathScenario:
    """A scenario with one frame per image, in the given order, named after the images'
    file stems.

    Args:
        base: the base gs-scenario file (its frames, if any, only give the poses).
        images: the registered images read from ``source``.
        source: the camera file, for messages.

    Raises:
        InputError: the base is not a valid scenario (naming it and the field); an
            image's stem is not a valid frame name, or two images share a stem (naming
            ``source`` and the images); no images.
    """
    base = Path(base).resolve()
    if not images:
        raise InputError(source, None, "no registered images to make frames from")
    frames_from_images = _frames(images, source)
    raw = JsonValidator(base).mapping(read_json_file(base), "$")
    poses_from = None
    if isinstance(raw.get("frames"), list) and raw["frames"]:
        first = load_scenario(base).frames[0]
        poses = {name: m.tolist() for name, m in first.poses.items()}
        poses_from = first.name
    else:
        objects = raw.get("objects")
        poses = {name: np.eye(4).tolist() for name in objects} if isinstance(objects, dict) \
            else {}
    frames = [{**frame, "poses": poses} for frame in frames_from_images]
    candidate = {**{k: v for k, v in raw.items() if k != "frames"}, "frames": frames}
    parsed = parse_scenario(candidate, base)  # every rule, messages naming the base
    assets = {}
    for name, spec in raw["assets"].items():
        asset = {**spec, "ply": str(parsed.assets[name].ply)}
        if isinstance(spec.get("keep"), str):
            asset["keep"] = str(_absolute(spec["keep"], base.parent))
        assets[name] = asset
    return CameraPathScenario({**candidate, "assets": assets}, poses_from)


def _frames(images: list[RegisteredImage], source: str | Path) -> list[dict[str, Any]]:
    seen: dict[str, str] = {}
    frames = []
    for image in images:
        name = image.frame_name
        if not is_valid_frame_name(name):
            raise InputError(source, f"image {image.name!r}",
                             f"its frame name {name!r} must be {FRAME_NAME_RULE}")
        if name in seen:
            raise InputError(source, f"image {image.name!r}",
                             f"frame name {name!r} also comes from image {seen[name]!r}; "
                             "select one of them with --images")
        seen[name] = image.name
        frames.append({"name": name, "camera": image.camera().to_json()})
    return frames


def _absolute(relative: str, folder: Path) -> Path:
    p = Path(relative).expanduser()
    return p if p.is_absolute() else (folder / p).resolve()
