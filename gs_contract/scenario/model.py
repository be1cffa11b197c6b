"""The parsed scenario: frozen dataclasses, and its fingerprint ("same scenario").

Built only by :func:`gs_contract.scenario.parse.parse_scenario`, which has checked
every field; the raw JSON dict is kept alongside for the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from gs_contract.camera import PinholeCamera
from gs_contract.errors import InputError
from gs_contract.files import require_regular_file
from gs_contract.pose import Similarity
from gs_contract.scenario.schema import (
    ROLE_INSTRUMENT,
    SCENARIO_FORMAT,
    SCENARIO_VERSION,
    OutputSettings,
    RenderSettings,
    Role,
)


@dataclass(frozen=True)
class AssetSpec:
    """One Gaussian file (absolute path). ``keep``: ``[M]`` int64 sorted unique file row
    indices to keep (None = all)."""

    name: str
    ply: Path
    keep: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ObjectSpec:
    """A placed asset. Instruments carry a class, an instance id (1-based) and the name
    of their instance: the object's ``instance`` field, or its own name when it has none.
    Instrument objects with the same instance name are parts of one instance."""

    name: str
    asset: str
    role: Role
    class_name: str | None = None
    class_index: int | None = None
    instance_id: int | None = None
    instance: str | None = None


@dataclass(frozen=True)
class InstanceSpec:
    """One labelled instrument: one or more instrument objects (its parts) sharing one
    instance id (the mask value), one class and one label.

    Attributes:
        instance_id: 1-based id (see :func:`gs_contract.scenario.parse.parse_scenario`).
        name: the parts' ``instance`` value, or the single object's own name.
        objects: the names of its parts, in file order.
    """

    instance_id: int
    name: str
    class_name: str
    class_index: int
    objects: tuple[str, ...]


@dataclass(frozen=True)
class FrameSpec:
    """One frame: the camera and the pose of each present object.

    ``poses``: ``[4, 4]`` float64 asset -> world matrices as written in the file;
    ``similarities``: the same poses checked and split into (s, R, t), once, at read.
    """

    index: int
    name: str
    camera: PinholeCamera
    poses: dict[str, np.ndarray]
    similarities: dict[str, Similarity] = field(compare=False)


@dataclass(frozen=True)
class Scenario:
    """A validated ``gs-scenario`` v1 file. ``path``: the (absolute) scenario file."""

    path: Path
    classes: tuple[str, ...]
    assets: dict[str, AssetSpec]
    objects: dict[str, ObjectSpec]
    render: RenderSettings
    output: OutputSettings
    frames: tuple[FrameSpec, ...]
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def instruments(self) -> list[ObjectSpec]:
        """Instrument objects in file order (their instance ids never decrease)."""
        return [o for o in self.objects.values() if o.role == ROLE_INSTRUMENT]

    @cached_property
    def instances(self) -> tuple[InstanceSpec, ...]:
        """The labelled instances, in instance-id order (ids 1, 2, ... with no gap)."""
        parts: dict[int, list[ObjectSpec]] = {}
        for o in self.instruments:
            parts.setdefault(int(o.instance_id), []).append(o)  # type: ignore[arg-type]
        return tuple(
            InstanceSpec(iid, str(objs[0].instance), str(objs[0].class_name),
                         int(objs[0].class_index),  # type: ignore[arg-type]
                         tuple(o.name for o in objs))
            for iid, objs in sorted(parts.items()))

    def fingerprint(self) -> str:
        """Hex sha256 of the scenario's content: "same scenario" means the same fingerprint.

        Computed from the parsed values, not the JSON text: defaults written out or
        left implicit, ``1`` or ``1.0``, key order, ``meta``, a ``keep`` list or the
        same indices in a file all give the same fingerprint; each asset counts by the
        sha256 of its file's bytes, not by its path. So moving the scenario and its
        assets together keeps the fingerprint, while a splat file changed in place
        makes it another scenario. Object order counts (it sets the instance ids).

        A used output folder only accepts a scenario with the same fingerprint
        (:func:`gs_contract.dataset.plan_output_folder`).

        Raises:
            InputError: an asset file cannot be read (naming ``assets.<name>.ply``).
        """
        canon = {
            "format": SCENARIO_FORMAT,
            "version": SCENARIO_VERSION,
            "classes": list(self.classes),
            "assets": {
                name: {"sha256": _file_sha256(a.ply, self.path, f"assets.{name}.ply"),
                       "keep": None if a.keep is None else a.keep.tolist()}
                for name, a in self.assets.items()},
            "objects": [_object_canon(o) for o in self.objects.values()],
            "render": self.render.to_json(),
            "output": self.output.to_json(),
            "frames": [{"name": f.name, "camera": f.camera.to_json(),
                        "poses": {obj: m.tolist() for obj, m in f.poses.items()}}
                       for f in self.frames],
        }
        text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _object_canon(o: ObjectSpec) -> list[Any]:
    """An object in the fingerprint; its instance name only when it differs from the
    default (its own name), so scenarios without parts keep their fingerprints."""
    canon: list[Any] = [o.name, o.asset, o.role, o.class_name]
    if o.instance is not None and o.instance != o.name:
        canon.append(o.instance)
    return canon


def _file_sha256(path: Path, scenario_path: Path, field: str) -> str:
    """Hex sha256 of a file's bytes, read in 8 MiB blocks (0.21 s per 250 MB measured)."""
    require_regular_file(path, source=scenario_path, field=field)
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(8 << 20):
                digest.update(block)
    except OSError as exc:
        raise InputError(scenario_path, field,
                         f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.hexdigest()
