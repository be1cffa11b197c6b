"""The pure half of turning a scenario into a Blender scene (no bpy).

:mod:`blender_addon.blender.scenario_import` builds the scene; this module decides what
it will hold and checks everything that can be checked before Blender is touched:

- :func:`fixed_camera`: one image size and ``K`` for every frame, as Blender settings;
- :func:`frame_rate`: the scene frame rate of images taken at given times;
- :func:`settings_not_carried` and :func:`export_differences`: what an export of the
  built scene will not give back as it was.

Frame mapping (both the scenario script and the recording import): scenario frame i
(0-based) is keyed at scene frame ``first_frame + i``, one frame per image.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from gs_contract.camera import CameraConversionError
from gs_contract.scenario import OutputSettings, RenderSettings, Scenario, blender_frame_name

from .camera_intrinsics import BlenderCameraSettings, blender_camera_settings

# Scenario settings the add-on has no place for (their defaults: gs_contract.scenario).
NOT_CARRIED = {"render": ("background", "sh_degree", "antialiased"),
               "output": ("split_seed", "min_visible_pixels", "mask_threshold")}
BLENDER_IMAGE_FORMATS = {"png": 'PNG', "jpg": 'JPG'}  # scenario -> Scene.gsds.image_format
# Two K matrices are the same camera when no entry differs by more than this (pixels).
K_TOLERANCE = 1e-9


class ScenarioImportError(Exception):
    """A scenario that cannot become a scene; the message names the field, or the file at
    fault when that is another file (``names_file``: an asset)."""

    def __init__(self, message: str, *, names_file: bool = False) -> None:
        super().__init__(message)
        self.names_file = names_file

    def located(self, source: object) -> str:
        """The one-line message, led by ``source`` (the file read) unless it names its own."""
        return str(self) if self.names_file else f"{source}: {self}"


def fixed_camera(scenario: Scenario, k_field: str | None = None) -> BlenderCameraSettings:
    """Blender camera settings for the scenario's image size and ``K``, which must be the
    same in every frame (a Blender camera has one resolution; its lens is not keyed here).

    ``k_field``: the field named when ``K`` cannot be converted (default
    ``frames[0].camera.K``; a recording's own field when the scenario was made from one).

    Raises:
        ScenarioImportError: ``frames[i].camera`` differs from the first frame's, or ``K``
            has a pixel aspect beyond Blender's (skew is refused by the scenario's reader).
    """
    first = scenario.frames[0].camera
    width, height, K = first.width, first.height, first.K
    for i, frame in enumerate(scenario.frames):
        camera = frame.camera
        if (camera.width, camera.height) != (width, height) or not np.allclose(
                camera.K, K, rtol=0, atol=K_TOLERANCE):
            raise ScenarioImportError(f"frames[{i}].camera: the image size and K must be the "
                                      "same in every frame")
    try:
        return blender_camera_settings(K, width, height)
    except CameraConversionError as exc:
        raise ScenarioImportError(f"{k_field or 'frames[0].camera.K'}: {exc}") from None


def frame_rate(times_s: np.ndarray) -> tuple[int, float] | None:
    """Blender's ``(render.fps, render.fps_base)`` for images taken at ``times_s`` (``[F]``
    seconds, in frame order): the rate is 1 / the median interval between consecutive
    images, ``fps`` the nearest whole number (at least 1) and ``fps_base = fps / rate``,
    so ``fps / fps_base`` is the rate (29.97 Hz -> 30 / 1.001). None when no interval is
    positive (a single image, or no usable timing)."""
    intervals = np.diff(np.asarray(times_s, dtype=np.float64))
    intervals = intervals[np.isfinite(intervals) & (intervals > 0)]
    if intervals.size == 0:
        return None
    rate = 1.0 / float(np.median(intervals))
    fps = max(1, round(rate))
    return fps, fps / rate


def settings_not_carried(scenario: Scenario) -> list[str]:
    """``field = value`` (as written in the file) for each setting the .blend cannot hold
    that differs from its default."""
    defaults = {"render": RenderSettings(), "output": OutputSettings()}
    parsed = {"render": scenario.render, "output": scenario.output}
    notes = []
    for block, keys in NOT_CARRIED.items():
        for key in keys:
            if getattr(parsed[block], key) != getattr(defaults[block], key):
                value = scenario.raw[block][key]
                notes.append(f"{block}.{key} = {json.dumps(value)}")
    return notes


def export_differences(scenario: Scenario, first_frame: int = 1) -> list[str]:
    """How an export of the built scene will differ in naming and order from ``scenario``:
    frames are named after Blender frames (``frame_0001`` ...), and instruments are
    listed by object name, which sets their instance ids (mask values)."""
    notes = []
    names = [f.name for f in scenario.frames]
    blender_names = [blender_frame_name(first_frame + i) for i in range(len(names))]
    if names != blender_names:
        notes.append(f"frames are exported as {blender_names[0]} ... {blender_names[-1]}, "
                     f"not {names[0]} ... {names[-1]}")
    instruments = [o.name for o in scenario.instruments]
    if instruments != sorted(instruments):
        notes.append(f"instruments are exported in name order {sorted(instruments)}, not "
                     f"{instruments}: their instance ids (mask values) change")
    return notes


def output_settings(output: OutputSettings) -> dict[str, Any]:
    """The scenario's ``output`` settings (defaults included) as ``Scene.gsds`` values."""
    values: dict[str, Any] = {"image_format": BLENDER_IMAGE_FORMATS[output.image_format],
                              "yolo_task": output.yolo_task.upper()}
    for key in ("coco", "masks", "amodal", "depth", "val_fraction"):
        values[key] = getattr(output, key)
    return values


def describe_rate(rate: tuple[int, float] | None) -> str:
    """``"29.97 fps"`` for ``(30, 1.001)``; ``"unchanged fps"`` for None."""
    return "unchanged fps" if rate is None else f"{rate[0] / rate[1]:.5g} fps"
