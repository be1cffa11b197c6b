"""gs_contract.crop: the gs-crop file (parsing, errors) and the inside test of its volumes.

Oracle for ``inside``: points built in the volume's own coordinates (where the unit
shape's membership is known by construction), mapped into the capture with
``capture_from_volume``; the test then asks from the capture side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from gs_contract.crop import (
    Crop,
    CropVolume,
    crop_document,
    inside,
    load_crop,
    parse_crop,
    save_crop,
)
from gs_contract.errors import InputError

IDENTITY = np.eye(4).tolist()


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula (independent of the code under test)."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _placement(seed: int) -> np.ndarray:
    """A rotated, non-uniformly scaled, translated capture_from_volume."""
    rng = np.random.default_rng(seed)
    m = np.eye(4)
    m[:3, :3] = _rotation(rng.normal(size=3), rng.uniform(0.3, 3.0)) @ np.diag([0.2, 3.0, 40.0])
    m[:3, 3] = rng.normal(size=3) * 100
    return m


def _known_points(shape: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Volume-space points with known membership, clear of the surface by 1%."""
    local = rng.uniform(-1.6, 1.6, size=(4000, 3))
    if shape == "box":
        margin = np.abs(local).max(axis=1)
    elif shape == "sphere":
        margin = np.linalg.norm(local, axis=1)
    else:
        margin = np.maximum(np.hypot(local[:, 0], local[:, 1]), np.abs(local[:, 2]))
    clear = np.abs(margin - 1.0) > 0.01
    return local[clear], margin[clear] < 1.0


@pytest.mark.parametrize("shape", ["box", "sphere", "cylinder"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inside_of_a_rotated_non_uniformly_scaled_volume(shape: str, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    local, expected = _known_points(shape, rng)
    m = _placement(seed)
    capture = local @ m[:3, :3].T + m[:3, 3]
    volume = CropVolume(shape, "keep", m)  # type: ignore[arg-type]
    got = volume.contains(capture)
    assert got.sum() > 100 and (~got).sum() > 100
    np.testing.assert_array_equal(got, expected)


def test_inside_analytic_cases() -> None:
    # A box 2 wide in x, 4 in y, 6 in z, centred at (10, 0, 0); a cylinder along x.
    box = np.diag([1.0, 2.0, 3.0, 1.0])
    box[0, 3] = 10.0
    pts = np.array([[10, 0, 0], [11, 2, 3], [11.01, 0, 0], [10, 2.01, 0], [10, 0, -3.01],
                    [9, -2, -3]], dtype=np.float32)
    assert inside(pts, "box", np.linalg.inv(box)).tolist() == [True, True, False, False,
                                                                False, True]
    # Cylinder: axis (volume z) along capture x, radius 0.5, half length 2.
    cyl = np.zeros((4, 4))
    cyl[:3, 0] = [0, 0.5, 0]  # volume x -> capture y
    cyl[:3, 1] = [0, 0, 0.5]  # volume y -> capture z
    cyl[:3, 2] = [2, 0, 0]    # volume z -> capture x (the axis)
    cyl[3, 3] = 1
    pts = np.array([[1.9, 0.3, 0.3], [1.9, 0.4, 0.4], [2.1, 0, 0], [-2, 0, 0.5]])
    assert inside(pts, "cylinder", np.linalg.inv(cyl)).tolist() == [True, False, False, True]
    sphere = np.diag([2.0, 2.0, 2.0, 1.0])
    assert inside(np.array([[0, 0, 2.0], [1.5, 1.5, 0]]), "sphere",
                  np.linalg.inv(sphere)).tolist() == [True, False]


def test_keep_and_remove_volumes_combine() -> None:
    big = np.diag([10.0, 10.0, 10.0, 1.0])
    small = np.diag([1.0, 1.0, 1.0, 1.0])
    far = np.eye(4)
    far[:3, 3] = [20, 0, 0]
    pts = np.array([[0, 0, 0], [5, 0, 0], [20, 0, 0], [50, 0, 0]], dtype=np.float32)
    crop = Crop((CropVolume("sphere", "keep", big), CropVolume("box", "keep", far),
                 CropVolume("sphere", "remove", small)))
    assert crop.passes(pts).tolist() == [False, True, True, False]
    only_remove = Crop((CropVolume("sphere", "remove", small),))
    assert only_remove.passes(pts).tolist() == [False, True, True, True]


def test_document_round_trip(tmp_path: Path) -> None:
    m = _placement(7)
    doc = crop_document([("cylinder", "keep", m), ("box", "remove", np.eye(4))])
    save_crop(tmp_path / "c.json", doc)
    crop = load_crop(tmp_path / "c.json")
    assert [(v.shape, v.mode) for v in crop.volumes] == [("cylinder", "keep"), ("box", "remove")]
    np.testing.assert_array_equal(crop.volumes[0].capture_from_volume, m)  # JSON floats exact
    assert json.loads((tmp_path / "c.json").read_text())["format"] == "gs-crop"


def _doc(**volume: object) -> dict[str, object]:
    v = {"shape": "box", "mode": "keep", "capture_from_volume": IDENTITY}
    v.update(volume)
    return {"format": "gs-crop", "version": 1, "volumes": [v, v]}


@pytest.mark.parametrize(("doc", "field", "words"), [
    ({"format": "gs-scenario", "version": 1, "volumes": []}, "format", "gs-crop"),
    ({"format": "gs-crop", "version": 2, "volumes": []}, "version", "unsupported"),
    ({"format": "gs-crop", "version": 1}, "volumes", "missing"),
    ({"format": "gs-crop", "version": 1, "volumes": []}, "volumes", "empty"),
    ({"format": "gs-crop", "version": 1, "volumes": [], "x": 1}, "x", "unknown key"),
    (_doc(shape="cone"), "volumes[0].shape", "cone"),
    (_doc(shape=["box"]), "volumes[0].shape", "unknown shape"),
    (_doc(mode="invert"), "volumes[0].mode", "keep, remove"),
    (_doc(extra=1), "volumes[0].extra", "unknown key"),
    (_doc(capture_from_volume=[[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
     "volumes[0].capture_from_volume", "4x4"),
    (_doc(capture_from_volume=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, "1", 0], [0, 0, 0, 1]]),
     "volumes[0].capture_from_volume", "[2][2] must be a number"),
    (_doc(capture_from_volume=[[1, 0, 0, 0], [0, True, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     "volumes[0].capture_from_volume", "[1][1] must be a number"),
    (_doc(capture_from_volume=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1e400, 0], [0, 0, 0, 1]]),
     "volumes[0].capture_from_volume", "NaN or infinity"),
    (_doc(capture_from_volume=[[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]]),
     "volumes[0].capture_from_volume", "not invertible"),
    (_doc(capture_from_volume=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1e-12, 0], [0, 0, 0, 1]]),
     "volumes[0].capture_from_volume", "not invertible"),
    (_doc(capture_from_volume=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]),
     "volumes[0].capture_from_volume", "last row"),
    ({"format": "gs-crop", "version": 1, "volumes": [7]}, "volumes[0]", "expected an object"),
])
def test_bad_documents_name_the_json_path(tmp_path: Path, doc: object, field: str,
                                          words: str) -> None:
    path = tmp_path / "crop.json"
    path.write_text(json.dumps(doc))  # 1e400 is written as Infinity, read back as inf
    with pytest.raises(InputError) as info:
        load_crop(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert words in info.value.problem


def test_json_nan_is_refused() -> None:
    doc = json.loads(json.dumps(_doc(capture_from_volume=np.eye(4).tolist()))
                     .replace("1.0, 0.0, 0.0, 0.0]", "NaN, 0.0, 0.0, 0.0]", 1))
    with pytest.raises(InputError, match="NaN or infinity at \\[0\\]\\[0\\]"):
        parse_crop(doc, "c.json")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"does not exist|no such|not found"):
        load_crop(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gs-crop",\n "version": }')
    with pytest.raises(InputError) as info:
        load_crop(bad)
    assert info.value.field == "line 2 column 13"


def test_writer_refuses_what_the_reader_refuses() -> None:
    with pytest.raises(InputError, match="not invertible"):
        crop_document([("box", "keep", np.zeros((4, 4)) + np.diag([0, 0, 0, 1.0]))])
    with pytest.raises(InputError, match=r"volumes\[0\]\.shape"):
        crop_document([("cone", "keep", np.eye(4))])  # type: ignore[list-item]
