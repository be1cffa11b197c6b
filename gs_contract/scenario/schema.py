"""The ``gs-scenario`` v1 vocabulary, written once (DESIGN contract 1).

Format name and version, role names, the keys each block allows, the ``render`` and
``output`` defaults, the frame-name rule and the image-size bound. The parser
(:mod:`gs_contract.scenario.parse`), the Blender add-on's exporter, the demo scenario
and ``scripts/scenario_to_blend.py`` all import these; none repeats them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

SCENARIO_FORMAT: Final = "gs-scenario"
SCENARIO_VERSION: Final = 1

Role = Literal["background", "instrument"]
ROLE_BACKGROUND: Final = "background"
ROLE_INSTRUMENT: Final = "instrument"
ROLES: tuple[Role, ...] = (ROLE_BACKGROUND, ROLE_INSTRUMENT)

ImageFormat = Literal["png", "jpg"]
IMAGE_FORMATS: tuple[ImageFormat, ...] = ("png", "jpg")
# Accepted spellings that are read as another: "jpeg" is "jpg".
IMAGE_FORMAT_ALIASES: dict[str, ImageFormat] = {"jpeg": "jpg"}
YoloTask = Literal["detect", "segment"]
YOLO_TASKS: tuple[YoloTask, ...] = ("detect", "segment")

# The keys each block may hold; anything else is refused, so that a typo such as
# ``val_fracton`` cannot silently fall back to a default.
TOP_LEVEL_KEYS = frozenset(
    {"format", "version", "classes", "assets", "objects", "render", "output", "frames", "meta"}
)
ASSET_KEYS = frozenset({"ply", "keep"})
OBJECT_KEYS = frozenset({"asset", "role", "class", "instance"})
FRAME_KEYS = frozenset({"name", "camera", "poses"})
CAMERA_KEYS = frozenset({"width", "height", "K", "world_to_camera"})

# A frame name becomes a file name: keep it portable. Matched with fullmatch, so a
# trailing newline is refused (``$`` would accept one).
FRAME_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FRAME_NAME_RULE = ("1-128 characters of letters, digits, '.', '_' or '-', starting with a "
                   "letter or digit (it becomes a file name)")

# Largest image width or height accepted in a scenario (pixels). Whether a frame of
# that size fits this machine is checked before rendering (gs_contract.scenario.memory).
MAX_IMAGE_SIDE: Final = 32768


def is_valid_frame_name(name: str) -> bool:
    """True when ``name`` follows :data:`FRAME_NAME_RULE`."""
    return FRAME_NAME_PATTERN.fullmatch(name) is not None


def blender_frame_name(frame_number: int) -> str:
    """The frame name the Blender exporter gives Blender frame ``frame_number``:
    ``frame_0001``; negative frames: ``frame_-001``."""
    return f"frame_{frame_number:04d}"


@dataclass(frozen=True)
class RenderSettings:
    """The ``render`` block, defaults included.

    Attributes:
        background: linear RGB, each in [0, 1].
        near, far: clipping distances along the camera's z (scene units), 0 < near < far.
        sh_degree: cap on the SH degree used (None = each file's own).
        antialiased: gsplat's opacity compensation.
    """

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    near: float = 0.01
    far: float = 1e10
    sh_degree: int | None = None
    antialiased: bool = False

    def to_json(self) -> dict[str, Any]:
        """The block as written in a scenario file (every key)."""
        out = dataclasses.asdict(self)
        out["background"] = list(self.background)
        return out


@dataclass(frozen=True)
class OutputSettings:
    """The ``output`` block, defaults included: what the dataset writer produces."""

    image_format: ImageFormat = "png"
    yolo_task: YoloTask = "detect"
    coco: bool = True
    masks: bool = True
    amodal: bool = False
    depth: bool = False
    val_fraction: float = 0.2
    split_seed: int = 0
    min_visible_pixels: int = 20
    mask_threshold: float = 0.5

    def to_json(self) -> dict[str, Any]:
        """The block as written in a scenario file (every key)."""
        return dataclasses.asdict(self)


RENDER_KEYS = frozenset(f.name for f in dataclasses.fields(RenderSettings))
OUTPUT_KEYS = frozenset(f.name for f in dataclasses.fields(OutputSettings))


def render_defaults() -> dict[str, Any]:
    """A fresh copy of the ``render`` block's defaults, as JSON values."""
    return RenderSettings().to_json()


def output_defaults() -> dict[str, Any]:
    """A fresh copy of the ``output`` block's defaults, as JSON values."""
    return OutputSettings().to_json()
