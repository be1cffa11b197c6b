"""Reading and validating ``gs-recording`` v1 files (DESIGN contract 8).

Every refusal is one :class:`~gs_contract.errors.InputError` naming the file and the JSON
field (``camera.sensor_from_camera``), the CSV line and column, or the base scenario's
field. Calibrations are checked with the scenario's similarity rule
(:func:`gs_contract.pose.similarity_from_matrix`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.files import require_regular_file
from gs_contract.jsonfile import JsonValidator, describe_value, read_json_file, short_repr
from gs_contract.pose import Similarity, similarity_from_matrix
from gs_contract.recording.images import read_images
from gs_contract.recording.model import (
    CAMERA_KEYS,
    DEFAULT_MAX_GAP_S,
    IMAGES_KEYS,
    OBJECT_KEYS,
    RECORDING_FORMAT,
    RECORDING_VERSION,
    TOP_LEVEL_KEYS,
    TRACKING_KEYS,
    RecordedCamera,
    RecordedObject,
    Recording,
)
from gs_contract.recording.tracking import (
    FRAME_COUNTING_FORMATS,
    TRACKING_FORMATS,
    SensorTrack,
    read_tracking,
)
from gs_contract.scenario.model import Scenario
from gs_contract.scenario.parse import parse_camera, parse_scenario

# The frame that stands in for the base scenario's own (ignored) frames while its other
# sections are validated.
_CHECK_FRAME_NAME = "recording_check"


def read_recording(path: str | Path) -> Recording:
    """Read and validate a recording, its base scenario, its tracker file and image table.

    Raises:
        InputError: one line naming the file and the field (or line and column) at fault;
            a sensor the recording uses that has no sample is named with its field.
    """
    path = Path(path).absolute()
    v = JsonValidator(path)
    raw = v.mapping(read_json_file(path), "$")
    fmt, version = raw.get("format"), raw.get("version")
    if fmt != RECORDING_FORMAT:
        v.fail("format", f"expected {RECORDING_FORMAT!r}, got {describe_value(fmt)}")
    if version != RECORDING_VERSION or isinstance(version, bool):
        v.fail("version", f"unsupported version {short_repr(version)}; this reader reads "
                          f"version {RECORDING_VERSION}")
    v.no_unknown_keys(raw, "$", TOP_LEVEL_KEYS)

    camera_raw = v.mapping(v.required(raw, "camera", "$"), "camera")
    camera = _parse_camera_block(v, camera_raw)
    base = _read_base(v, v.string(v.required(raw, "base", "$"), "base"), camera_raw)
    tracking = v.mapping(v.required(raw, "tracking", "$"), "tracking")
    v.no_unknown_keys(tracking, "tracking", TRACKING_KEYS)
    tracking_format = v.string(v.required(tracking, "format", "tracking"), "tracking.format")
    if tracking_format not in TRACKING_FORMATS:
        v.fail("tracking.format", f"unknown tracking format {tracking_format!r}; known: "
                                  f"{sorted(TRACKING_FORMATS)}")
    frame_rate = _frame_rate(v, tracking, tracking_format)
    images_raw = v.mapping(v.required(raw, "images", "$"), "images")
    v.no_unknown_keys(images_raw, "images", IMAGES_KEYS)
    clock_offset = v.number(raw.get("clock_offset_s", 0.0), "clock_offset_s")
    max_gap = v.number(raw.get("max_gap_s", DEFAULT_MAX_GAP_S), "max_gap_s")
    if max_gap <= 0:
        v.fail("max_gap_s", f"must be positive (seconds), got {max_gap:g}")
    world_from_tracker = _similarity(v, raw.get("world_from_tracker", np.eye(4).tolist()),
                                     "world_from_tracker")
    objects = _parse_objects(v, v.required(raw, "objects", "$"), base)

    tracking_file = _table(v, tracking, "tracking")
    images_file = _table(v, images_raw, "images")
    tracks = read_tracking(tracking_file, tracking_format, frame_rate_hz=frame_rate)
    _check_sensors(v, tracks, tracking_file, camera, objects)
    return Recording(path, base, tracking_file, tracking_format, frame_rate, tracks, images_file,
                     read_images(images_file), clock_offset, max_gap, world_from_tracker,
                     camera, objects)


def _frame_rate(v: JsonValidator, tracking: dict[str, Any], fmt: str) -> float | None:
    """``tracking.frame_rate_hz``: required by formats that count frames, refused by
    formats with timestamps."""
    where = "tracking.frame_rate_hz"
    if fmt not in FRAME_COUNTING_FORMATS:
        if "frame_rate_hz" in tracking:
            v.fail(where, f"only for formats that count frames "
                          f"({sorted(FRAME_COUNTING_FORMATS)}); {fmt!r} has timestamps")
        return None
    if "frame_rate_hz" not in tracking:
        v.fail(where, f"missing: the {fmt!r} format counts frames; give the tracker's frame "
                      "rate in Hz")
    rate = v.number(tracking["frame_rate_hz"], where)
    if rate <= 0:
        v.fail(where, f"must be positive (Hz), got {rate:g}")
    return rate


def _parse_camera_block(v: JsonValidator, raw: dict[str, Any]) -> RecordedCamera:
    """``camera``: size and ``K`` checked by the scenario's own camera rule."""
    v.no_unknown_keys(raw, "camera", CAMERA_KEYS)
    pinhole = parse_camera(v, {k: raw[k] for k in ("width", "height", "K") if k in raw}
                            | {"world_to_camera": np.eye(4).tolist()}, "camera")
    sensor = v.string(v.required(raw, "sensor", "camera"), "camera.sensor")
    calibration = _similarity(v, v.required(raw, "sensor_from_camera", "camera"),
                              "camera.sensor_from_camera")
    return RecordedCamera(pinhole.width, pinhole.height, pinhole.K, sensor, calibration)


def _read_base(v: JsonValidator, relative: str, camera_raw: dict[str, Any]) -> Scenario:
    """The base scenario with its frames replaced by one check frame (so that classes,
    assets, objects, render and output are validated, with messages naming the base file)."""
    base_path = require_regular_file(v.resolve(relative), source=v.path, field="base")
    base_v = JsonValidator(base_path)
    raw = base_v.mapping(read_json_file(base_path), "$")
    check_frame = {"name": _CHECK_FRAME_NAME, "poses": {},
                   "camera": {k: camera_raw[k] for k in ("width", "height", "K")}
                   | {"world_to_camera": np.eye(4).tolist()}}
    return parse_scenario({**raw, "frames": [check_frame]}, base_path)


def _parse_objects(v: JsonValidator, raw: Any, base: Scenario) -> dict[str, RecordedObject]:
    """One entry per base object (in the base's order): a fixed pose or a sensor."""
    raw = v.mapping(raw, "objects")
    for name in raw:
        if name not in base.objects:
            v.fail(f"objects.{name}", f"not an object of the base scenario {base.path.name}; "
                                      f"its objects: {sorted(base.objects)}")
    objects: dict[str, RecordedObject] = {}
    for name in base.objects:
        where = f"objects.{name}"
        if name not in raw:
            v.fail(where, f"missing: base object {name!r} needs a fixed 'pose' or a "
                          "'sensor' with 'sensor_from_asset'")
        spec = v.mapping(raw[name], where)
        v.no_unknown_keys(spec, where, OBJECT_KEYS)
        if "pose" in spec:
            if "sensor" in spec or "sensor_from_asset" in spec:
                v.fail(where, "give either a fixed 'pose' or a 'sensor' with "
                              "'sensor_from_asset', not both")
            objects[name] = RecordedObject(name, pose=_similarity(v, spec["pose"],
                                                                  f"{where}.pose"))
            continue
        if "sensor" not in spec:
            v.fail(where, "needs a fixed 'pose' or a 'sensor' with 'sensor_from_asset'")
        sensor = v.string(spec["sensor"], f"{where}.sensor")
        calibration = _similarity(v, v.required(spec, "sensor_from_asset", where),
                                  f"{where}.sensor_from_asset")
        objects[name] = RecordedObject(name, sensor=sensor, sensor_from_asset=calibration)
    return objects


def _similarity(v: JsonValidator, raw: Any, where: str) -> Similarity:
    """A 4x4 similarity (the scenario's rule), refused naming the recording and ``where``."""
    return similarity_from_matrix(v.matrix(raw, where, (4, 4)), source=v.path, field=where)


def _table(v: JsonValidator, block: dict[str, Any], where: str) -> Path:
    """The absolute path of a block's ``file`` (relative to the recording's folder)."""
    path = v.resolve(v.string(v.required(block, "file", where), f"{where}.file"))
    return require_regular_file(path, source=v.path, field=f"{where}.file")


def _check_sensors(v: JsonValidator, tracks: dict[str, SensorTrack], tracking_file: Path,
                   camera: RecordedCamera, objects: dict[str, RecordedObject]) -> None:
    """Every sensor the recording names has samples in the tracker file."""
    used = [("camera.sensor", camera.sensor)] + [
        (f"objects.{o.name}.sensor", o.sensor) for o in objects.values() if o.sensor]
    for where, sensor in used:
        if sensor not in tracks:
            v.fail(where, f"unknown sensor {sensor!r}: no sample of it in "
                          f"{tracking_file.name}; its sensors: {sorted(tracks)}")
