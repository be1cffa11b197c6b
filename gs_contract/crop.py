"""Crop volumes, the ``gs-crop`` v1 file: which Gaussians of a capture a crop keeps.

```json
{"format": "gs-crop", "version": 1,
 "volumes": [{"shape": "box", "mode": "keep",
              "capture_from_volume": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}
```

A volume is a unit shape in its own coordinates: ``box`` (``|x|, |y|, |z| <= 1``),
``sphere`` (``x^2 + y^2 + z^2 <= 1``) or ``cylinder`` (``x^2 + y^2 <= 1`` and ``|z| <= 1``),
placed in the capture by ``capture_from_volume``, a 4x4 row-major affine matrix mapping
volume coordinates to the capture's (PLY) coordinates: any invertible one (rotation,
translation, non-uniform scale, even a mirror). The Blender add-on turns an empty (its
transform relative to the proxy and its display size and type) into one volume.

A Gaussian (its centre) passes the crop when it lies inside at least one ``keep`` volume
(if there is any ``keep`` volume) and inside no ``remove`` volume. Points on the surface
are inside.

``gs-backend extract --crop FILE`` reads these files; the Blender add-on writes them with
:func:`crop_document` / :func:`save_crop`. Numpy and the standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from gs_contract.atomic import write_text_atomic
from gs_contract.jsonfile import JsonValidator, describe_value, read_json_file, short_repr

CROP_FORMAT = "gs-crop"
CROP_VERSION = 1
VolumeShape = Literal["box", "sphere", "cylinder"]
CropMode = Literal["keep", "remove"]
SHAPES: tuple[str, ...] = get_args(VolumeShape)
MODES: tuple[str, ...] = get_args(CropMode)
# The 3x3 part of capture_from_volume must have singular values within this ratio of each
# other: flatter than that is a volume of (numerically) no thickness, which keeps nothing
# reliably and cannot be inverted in float64 without losing every digit.
MIN_SINGULAR_RATIO = 1e-9
_TOP_KEYS = frozenset({"format", "version", "volumes"})
_VOLUME_KEYS = frozenset({"shape", "mode", "capture_from_volume"})


@dataclass(frozen=True, eq=False)
class CropVolume:
    """One volume: a unit ``shape`` placed by ``capture_from_volume`` (``[4, 4]`` float64)."""

    shape: VolumeShape
    mode: CropMode
    capture_from_volume: np.ndarray

    def volume_from_capture(self) -> np.ndarray:
        """``[4, 4]`` float64, the inverse of ``capture_from_volume``."""
        return np.linalg.inv(self.capture_from_volume)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``[N]`` bool: which of the ``[N, 3]`` capture-space points lie inside (surface
        included)."""
        return inside(points, self.shape, self.volume_from_capture())


@dataclass(frozen=True)
class Crop:
    """The volumes of one crop file, in file order."""

    volumes: tuple[CropVolume, ...]

    def passes(self, points: np.ndarray) -> np.ndarray:
        """``[N]`` bool: the ``[N, 3]`` points inside some ``keep`` volume (when there is
        one) and inside no ``remove`` volume."""
        n = np.asarray(points).shape[0]
        keeps = [v for v in self.volumes if v.mode == "keep"]
        result = np.zeros(n, dtype=bool) if keeps else np.ones(n, dtype=bool)
        for v in keeps:
            result |= v.contains(points)
        for v in self.volumes:
            if v.mode == "remove":
                result &= ~v.contains(points)
        return result


def inside(points: np.ndarray, shape: VolumeShape, volume_from_capture: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the points inside the unit ``shape`` after mapping them to volume
    coordinates.

    Args:
        points: ``[N, 3]`` capture coordinates (any float type; computed in float64).
        shape: ``box``, ``sphere`` or ``cylinder``.
        volume_from_capture: ``[4, 4]`` affine matrix, capture -> volume coordinates.
    """
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(volume_from_capture, dtype=np.float64)
    local = p @ m[:3, :3].T + m[:3, 3]
    if shape == "box":
        return (np.abs(local) <= 1.0).all(axis=1)
    if shape == "sphere":
        return np.einsum("ij,ij->i", local, local) <= 1.0
    if shape == "cylinder":
        return (local[:, 0] ** 2 + local[:, 1] ** 2 <= 1.0) & (np.abs(local[:, 2]) <= 1.0)
    raise ValueError(f"unknown volume shape {shape!r}; expected one of {SHAPES}")


# ----------------------------------------------------------------------------- reading


def load_crop(path: str | Path) -> Crop:
    """Read and validate a ``gs-crop`` file.

    Raises:
        InputError: naming the file and the JSON path of the first bad field (e.g.
            ``volumes[2].shape``); also for a file that is missing or not JSON.
    """
    path = Path(path).absolute()
    raw = read_json_file(path)
    return parse_crop(raw, path)


def parse_crop(raw: Any, source: str | Path) -> Crop:
    """Validate an already-decoded ``gs-crop`` document; ``source`` names it in messages.

    Refused: another format or version, unknown keys, no volumes, an unknown ``shape`` or
    ``mode``, a ``capture_from_volume`` that is not a 4x4 matrix of finite numbers (strings
    and booleans are not numbers), whose last row is not ``[0, 0, 0, 1]``, or whose 3x3
    part is singular or nearly so (see :data:`MIN_SINGULAR_RATIO`).
    """
    v = JsonValidator(Path(source))
    raw = v.mapping(raw, "$")
    if raw.get("format") != CROP_FORMAT:
        v.fail("format", f"expected {CROP_FORMAT!r}, got {describe_value(raw.get('format'))}")
    version = raw.get("version")
    if version != CROP_VERSION or isinstance(version, bool):
        v.fail("version", f"unsupported version {short_repr(version)}; this reader reads version "
                          f"{CROP_VERSION}")
    v.no_unknown_keys(raw, "$", _TOP_KEYS)
    items = v.sequence(v.required(raw, "volumes", "$"), "volumes")
    if not items:
        v.fail("volumes", "is empty: a crop needs at least one volume")
    return Crop(tuple(_parse_volume(v, item, f"volumes[{i}]") for i, item in enumerate(items)))


def _parse_volume(v: JsonValidator, raw: Any, where: str) -> CropVolume:
    raw = v.mapping(raw, where)
    v.no_unknown_keys(raw, where, _VOLUME_KEYS)
    shape = v.required(raw, "shape", where)
    if not isinstance(shape, str) or shape not in SHAPES:
        v.fail(f"{where}.shape", f"unknown shape {short_repr(shape)}; expected one of "
                                 f"{', '.join(SHAPES)}")
    mode = v.required(raw, "mode", where)
    if not isinstance(mode, str) or mode not in MODES:
        v.fail(f"{where}.mode", f"unknown mode {short_repr(mode)}; expected one of "
                                f"{', '.join(MODES)}")
    field = f"{where}.capture_from_volume"
    matrix = v.matrix(v.required(raw, "capture_from_volume", where), field, (4, 4))
    problem = affine_problem(matrix)
    if problem is not None:
        v.fail(field, problem)
    return CropVolume(shape, mode, matrix)


def affine_problem(matrix: np.ndarray) -> str | None:
    """Why the ``[4, 4]`` finite matrix cannot place a volume, or None when it can."""
    if not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        return f"the last row must be [0, 0, 0, 1] (an affine map), got {matrix[3].tolist()}"
    sigma = np.linalg.svd(matrix[:3, :3], compute_uv=False)
    if not sigma[-1] > MIN_SINGULAR_RATIO * sigma[0]:
        return ("is not invertible: the volume is flat or empty (3x3 part has singular "
                f"values {', '.join(f'{s:.3g}' for s in sigma)})")
    return None


# ----------------------------------------------------------------------------- writing


def crop_document(volumes: Iterable[tuple[VolumeShape, CropMode, Sequence[Sequence[float]]]]
                  ) -> dict[str, Any]:
    """A ``gs-crop`` v1 document from ``(shape, mode, capture_from_volume)`` triples.

    Validated as a reader would (so a writer never makes a file the reader refuses).

    Raises:
        InputError: as :func:`parse_crop`, with the source ``<crop>``.
    """
    doc = {"format": CROP_FORMAT, "version": CROP_VERSION,
           "volumes": [{"shape": shape, "mode": mode,
                        "capture_from_volume": np.asarray(m, dtype=np.float64).tolist()}
                       for shape, mode, m in volumes]}
    parse_crop(doc, "<crop>")
    return doc


def save_crop(path: str | Path, document: dict[str, Any]) -> None:
    """Write a document from :func:`crop_document` to ``path`` atomically, as JSON."""
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")
