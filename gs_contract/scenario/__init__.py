"""The ``gs-scenario`` v1 contract: its vocabulary, parsing, the parsed model and its
fingerprint, and the memory a frame needs.

- :mod:`.schema`: format name and version, roles, allowed keys, ``render`` / ``output``
  defaults, the frame-name rule;
- :mod:`.parse`: :func:`load_scenario` / :func:`parse_scenario` (every rule, JSON-path
  messages);
- :mod:`.model`: :class:`Scenario` and its parts, :meth:`Scenario.fingerprint`;
- :mod:`.memory`: the per-frame memory estimate checked before rendering;
- :mod:`.write`: :func:`write_scenario_file` for commands that make scenarios.

Imports numpy and the standard library only (no torch), so the Blender add-on reads and
writes scenarios with the same code as the backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gs_contract.scenario.memory import (
    check_frame_memory,
    frame_channels,
    frame_memory_bytes,
    physical_memory_bytes,
)
from gs_contract.scenario.model import (
    AssetSpec,
    FrameSpec,
    InstanceSpec,
    ObjectSpec,
    Scenario,
)
from gs_contract.scenario.parse import load_scenario, parse_scenario
from gs_contract.scenario.schema import (
    ASSET_KEYS,
    CAMERA_KEYS,
    FRAME_KEYS,
    FRAME_NAME_PATTERN,
    FRAME_NAME_RULE,
    IMAGE_FORMAT_ALIASES,
    IMAGE_FORMATS,
    MAX_IMAGE_SIDE,
    OBJECT_KEYS,
    OUTPUT_KEYS,
    RENDER_KEYS,
    ROLE_BACKGROUND,
    ROLE_INSTRUMENT,
    ROLES,
    SCENARIO_FORMAT,
    SCENARIO_VERSION,
    TOP_LEVEL_KEYS,
    YOLO_TASKS,
    ImageFormat,
    OutputSettings,
    RenderSettings,
    Role,
    YoloTask,
    blender_frame_name,
    is_valid_frame_name,
    output_defaults,
    render_defaults,
)
from gs_contract.scenario.write import with_portable_asset_paths, write_scenario_file


def scenario_fingerprint(raw: Any, path: str | Path) -> str:
    """The fingerprint of a scenario dict that is (or will be) the file at ``path``:
    ``parse_scenario(raw, path).fingerprint()``. Asset paths may be absolute or
    relative to ``path``'s folder.

    Raises:
        InputError: the dict is not a valid scenario, or an asset cannot be read.
    """
    return parse_scenario(raw, path).fingerprint()

__all__ = [
    "ASSET_KEYS", "CAMERA_KEYS", "FRAME_KEYS", "FRAME_NAME_PATTERN",
    "FRAME_NAME_RULE",
    "IMAGE_FORMATS", "IMAGE_FORMAT_ALIASES", "MAX_IMAGE_SIDE", "OBJECT_KEYS", "OUTPUT_KEYS",
    "RENDER_KEYS", "ROLES", "ROLE_BACKGROUND", "ROLE_INSTRUMENT", "SCENARIO_FORMAT",
    "SCENARIO_VERSION", "TOP_LEVEL_KEYS", "YOLO_TASKS",
    "AssetSpec", "FrameSpec", "ImageFormat", "InstanceSpec", "ObjectSpec", "OutputSettings",
    "RenderSettings", "Role", "Scenario", "YoloTask",
    "blender_frame_name", "check_frame_memory", "frame_channels", "frame_memory_bytes",
    "is_valid_frame_name", "load_scenario", "output_defaults", "parse_scenario",
    "physical_memory_bytes", "render_defaults", "scenario_fingerprint",
    "with_portable_asset_paths", "write_scenario_file",
]
