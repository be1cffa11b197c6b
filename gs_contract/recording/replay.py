"""A recording replayed into a ``gs-scenario`` v1: one frame per recorded image
(DESIGN contract 8).

At each image's tracker time ``t = timestamp + clock_offset_s`` every sensor's pose is
interpolated (:mod:`gs_contract.recording.interpolate`), then

- ``world_from_asset = world_from_tracker . tracker_from_sensor(t) . sensor_from_asset``;
- ``world_to_camera`` = the inverse of the rigid part of ``world_from_tracker .
  tracker_from_sensor(t) . sensor_from_camera``: its uniform scale divided out of the 3x3
  part, the translation (the camera's centre in world units) kept;
- objects without a sensor keep their fixed ``pose``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.files import portable_path
from gs_contract.pose import similarity_from_matrix
from gs_contract.recording.interpolate import bracket, pose_at
from gs_contract.recording.model import Recording
from gs_contract.recording.parse import read_recording
from gs_contract.scenario.parse import parse_scenario
from gs_contract.scenario.schema import SCENARIO_FORMAT, SCENARIO_VERSION
from gs_contract.scenario.write import write_scenario_file


@dataclass(frozen=True)
class ReplayStats:
    """What the replay used, for reports.

    Attributes:
        sensors: per sensor used: ``samples`` (count), ``first_s`` and ``last_s``
            (tracker clock).
        max_gap_used_s: the longest interval between two samples that an image time was
            interpolated across (0 when every image fell on a sample).
    """

    sensors: dict[str, dict[str, float]]
    max_gap_used_s: float


@dataclass(frozen=True)
class Replay:
    """A replayed recording.

    Attributes:
        scenario: a complete gs-scenario v1 object (JSON-ready), asset paths absolute.
        image_names: one per frame, equal to the frame names, in image-time order.
        image_times_s: ``(F,)`` float64 the images' own timestamps (seconds, image clock).
        stats: sensors and interpolation gaps used.
    """

    scenario: dict[str, Any]
    image_names: tuple[str, ...]
    image_times_s: np.ndarray
    stats: ReplayStats = field(default_factory=lambda: ReplayStats({}, 0.0))


def replay_file(path: str | Path) -> Replay:
    """Read the recording at ``path`` and replay it.

    Raises:
        InputError: one line: a bad recording, base scenario, tracker file or image table;
            an image outside a sensor's samples or across a gap longer than ``max_gap_s``
            (naming the image and the sensor).
    """
    return replay_recording(read_recording(path))


def replay_recording(recording: Recording) -> Replay:
    """The scenario of an already-read recording (see :func:`replay_file`)."""
    world_from_tracker = recording.world_from_tracker.matrix()
    camera = recording.camera
    sensors = [camera.sensor] + [o.sensor for o in recording.objects.values()
                                 if o.sensor is not None]
    max_gap = 0.0
    frames = []
    for image in recording.images:
        t = image.time_s + recording.clock_offset_s
        world_from_sensor = {}
        for sensor in dict.fromkeys(sensors):
            track = recording.tracks[sensor]
            where = bracket(track, t, recording.max_gap_s, image=image.file,
                            source=recording.path)
            max_gap = max(max_gap, where.gap_s)
            world_from_sensor[sensor] = world_from_tracker @ pose_at(track, where)
        poses = {}
        for name, obj in recording.objects.items():
            if obj.pose is not None:
                poses[name] = obj.pose.matrix()
            else:
                assert obj.sensor is not None and obj.sensor_from_asset is not None
                poses[name] = world_from_sensor[obj.sensor] @ obj.sensor_from_asset.matrix()
        world_from_camera = world_from_sensor[camera.sensor] @ camera.sensor_from_camera.matrix()
        frames.append({
            "name": image.name,
            "camera": {"width": camera.width, "height": camera.height,
                       "K": camera.K.tolist(),
                       "world_to_camera": _world_to_camera(recording, world_from_camera,
                                                           image.file).tolist()},
            "poses": {name: m.tolist() for name, m in poses.items()},
        })
    scenario = _scenario_dict(recording, frames)
    parse_scenario(scenario, recording.path)  # the result is an ordinary, valid scenario
    stats = ReplayStats(
        {s: {"samples": int(recording.tracks[s].times_s.size),
             "first_s": float(recording.tracks[s].times_s[0]),
             "last_s": float(recording.tracks[s].times_s[-1])} for s in dict.fromkeys(sensors)},
        max_gap)
    return Replay(scenario, tuple(i.name for i in recording.images),
                  np.array([i.time_s for i in recording.images], dtype=np.float64), stats)


def _world_to_camera(recording: Recording, world_from_camera: np.ndarray,
                     image: str) -> np.ndarray:
    """The inverse of the rigid part of a ``[4, 4]`` similarity ``world_from_camera``."""
    rigid = similarity_from_matrix(world_from_camera, source=recording.path,
                                   field=f"camera at image {image!r}")
    out = np.eye(4)
    out[:3, :3] = rigid.rotation.T
    out[:3, 3] = -rigid.rotation.T @ rigid.translation
    return out


def _scenario_dict(recording: Recording, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """The base scenario's sections (asset paths made absolute) with the replayed frames."""
    base = recording.base
    raw = base.raw
    assets: dict[str, Any] = {}
    for name, asset in base.assets.items():
        entry: dict[str, Any] = {"ply": str(asset.ply)}
        keep = raw["assets"][name].get("keep")
        if isinstance(keep, str):
            entry["keep"] = str(_absolute(base.path.parent, keep))
        elif keep is not None:
            entry["keep"] = keep
        assets[name] = entry
    out: dict[str, Any] = {
        "format": SCENARIO_FORMAT, "version": SCENARIO_VERSION,
        "classes": list(base.classes), "assets": assets,
        "objects": raw["objects"],
        "render": base.render.to_json(), "output": base.output.to_json(),
        "frames": frames,
    }
    meta = raw.get("meta")
    out["meta"] = {**(meta if isinstance(meta, dict) else {}), "replay": {
        "recording": str(recording.path),
        "clock_offset_s": recording.clock_offset_s,
        "image_times_s": [i.time_s for i in recording.images]}}
    return out


def _absolute(folder: Path, relative: str) -> Path:
    p = Path(relative).expanduser()
    return p if p.is_absolute() else (folder / p).resolve()


def write_replay_scenario(replay: Replay, out: Path) -> None:
    """Write ``replay.scenario`` to ``out`` (atomically), asset paths rewritten relative to
    ``out``'s folder where one exists (another drive keeps the absolute path), so the file
    keeps working when its folder and the assets move together.

    Raises:
        InputError: the rewritten scenario does not parse (it always should), or the
            file cannot be written (naming ``out``).
    """
    out = Path(out).absolute()
    scenario = dict(replay.scenario)
    replay_meta = scenario.get("meta", {}).get("replay")
    if isinstance(replay_meta, dict):
        scenario["meta"] = {**scenario["meta"], "replay": {
            **replay_meta, "recording": portable_path(replay_meta["recording"], out.parent)}}
    write_scenario_file(scenario, out)
