"""Multi-part instruments: ``objects.<name>.instance`` (DESIGN contract 7).

Contract side: instance ids, grouping, class agreement, refusals, fingerprint.
Backend side, end to end through ``gs-backend render``: a grasper made of a shaft and
a jaw posed separately, with a gap between them, is one instance everywhere (mask
value, YOLO row, COCO annotation, manifest entry, amodal mask). The oracle is the
same scene with the two parts baked into one asset (their Gaussians translated by
their poses and concatenated) placed as a single object: it must give the very same
files, pixel for pixel.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from gs_backend.cli import main
from gs_backend.gaussians import Gaussians
from gs_backend.io.inria_ply import save_inria_ply
from gs_contract.errors import InputError
from gs_contract.scenario import frame_channels, load_scenario, parse_scenario
from tests.scenario_factory import HEIGHT, WIDTH, K, blob, look_down, translation

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# --- the contract ------------------------------------------------------------------------


def objects_scenario(folder: Path, objects: dict[str, Any],
                     classes: tuple[str, ...] = ("grasper", "needle_driver")) -> dict[str, Any]:
    """A minimal valid scenario dict over ``objects`` (all using one asset file)."""
    (folder / "a.ply").write_bytes(b"ply")  # parsing checks that it exists, never reads it
    for spec in objects.values():
        spec.setdefault("asset", "a")
    return {"format": "gs-scenario", "version": 1, "classes": list(classes),
            "assets": {"a": {"ply": "a.ply"}}, "objects": objects,
            "frames": [{"name": "f", "camera": {"width": 4, "height": 4, "K": K,
                                                "world_to_camera": np.eye(4).tolist()}}]}


def inst(cls: str = "grasper", instance: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"role": "instrument", "class": cls}
    if instance is not None:
        spec["instance"] = instance
    return spec


def test_parts_share_the_id_of_their_first_part(tmp_path):
    raw = objects_scenario(tmp_path, {
        "scene": {"role": "background"},
        "a": inst(),
        "shaft": inst(instance="tool"),
        "b": inst("needle_driver"),
        "jaw": inst(instance="tool"),
        "c": inst(),
    })
    s = parse_scenario(raw, tmp_path / "s.json")
    ids = {o.name: o.instance_id for o in s.instruments}
    assert ids == {"a": 1, "shaft": 2, "b": 3, "jaw": 2, "c": 4}
    assert [(i.instance_id, i.name, i.objects, i.class_name, i.class_index)
            for i in s.instances] == [
        (1, "a", ("a",), "grasper", 0), (2, "tool", ("shaft", "jaw"), "grasper", 0),
        (3, "b", ("b",), "needle_driver", 1), (4, "c", ("c",), "grasper", 0)]
    assert frame_channels(s) == 3 + 4 + 1  # one weight channel per instance, not per object
    assert s.objects["scene"].instance is None and s.objects["scene"].instance_id is None


def test_without_instance_every_instrument_is_its_own_instance(tmp_path):
    raw = objects_scenario(tmp_path, {"x": inst(), "y": inst("needle_driver"), "z": inst()})
    s = parse_scenario(raw, tmp_path / "s.json")
    assert [(i.instance_id, i.name, i.objects) for i in s.instances] == [
        (1, "x", ("x",)), (2, "y", ("y",)), (3, "z", ("z",))]


def test_an_instance_named_after_an_object_joins_it(tmp_path):
    """An object's instance defaults to its own name, so a part may name it."""
    raw = objects_scenario(tmp_path, {"grasper": inst(), "other": inst(),
                                      "grasper_jaw": inst(instance="grasper")})
    s = parse_scenario(raw, tmp_path / "s.json")
    assert [(i.instance_id, i.objects) for i in s.instances] == [
        (1, ("grasper", "grasper_jaw")), (2, ("other",))]


@pytest.mark.parametrize("objects, field, words", [
    ({"scene": {"role": "background", "instance": "tool"}, "a": inst()},
     "objects.scene.instance", ["only instrument objects", "'background'"]),
    ({"shaft": inst(instance="tool"), "jaw": inst("needle_driver", instance="tool")},
     "objects.jaw.class", ["'needle_driver'", "'grasper'", "objects.shaft", "'tool'"]),
    ({"a": inst(instance="")}, "objects.a.instance", ["non-empty string"]),
    ({"a": inst(instance=3)}, "objects.a.instance", ["non-empty string", "number 3"]),  # type: ignore[arg-type]
    ({"a": {**inst(), "instanc": "x"}}, "objects.a.instanc", ["unknown key"]),
])
def test_bad_instances_are_refused_naming_the_field(tmp_path, objects, field, words):
    with pytest.raises(InputError) as info:
        parse_scenario(objects_scenario(tmp_path, objects), tmp_path / "s.json")
    assert info.value.field == field
    for word in words:
        assert word in str(info.value), str(info.value)


def test_fingerprint_follows_the_grouping_not_the_spelling(tmp_path):
    base = objects_scenario(tmp_path, {"shaft": inst(), "jaw": inst()})
    path = tmp_path / "s.json"

    def fingerprint(**instances: str) -> str:
        raw = copy.deepcopy(base)
        for name, value in instances.items():
            raw["objects"][name]["instance"] = value
        return parse_scenario(raw, path).fingerprint()

    plain = fingerprint()
    # Writing out the default (an object's own name) changes nothing ...
    assert fingerprint(shaft="shaft", jaw="jaw") == plain
    # ... grouping the parts does, and the instance's name counts.
    grouped = fingerprint(shaft="tool", jaw="tool")
    assert grouped != plain
    assert fingerprint(jaw="shaft") == fingerprint(shaft="shaft", jaw="shaft") != grouped
    assert fingerprint(shaft="tool2", jaw="tool2") != grouped


# --- the backend, end to end -------------------------------------------------------------

SHAFT_AT = (-0.12, 0.05, 0.1)
JAW_AT = (0.2, 0.05, 0.1)  # a ~10 pixel gap between the shaft's tip and the jaw
DRIVER_CROSSING = translation(-0.12, 0.05, 0.3, yaw=math.pi / 2)  # above the shaft, across it
DRIVER_AWAY = translation(0.1, -0.2, 0.2)


def assets() -> dict[str, Gaussians]:
    return {
        "tissue": blob(400, (0, 0, 0), (1.0, 0.8, 0.02), (0.8, 0.4, 0.4), scale=0.03, seed=1),
        "shaft": blob(150, (0, 0, 0), (0.3, 0.04, 0.04), (0.6, 0.6, 0.7), scale=0.012, seed=2),
        "jaw": blob(60, (0, 0, 0), (0.08, 0.04, 0.04), (0.7, 0.7, 0.5), scale=0.012, seed=3),
        "driver": blob(150, (0, 0, 0), (0.3, 0.05, 0.05), (0.2, 0.7, 0.3), scale=0.012,
                       seed=4),
    }


def moved(g: Gaussians, at: tuple[float, float, float]) -> Gaussians:
    return Gaussians(g.means + torch.tensor(at, dtype=torch.float32), g.quats, g.scales,
                     g.opacities, g.sh)


FRAMES = {  # name -> poses; None = the object is absent
    "frame_0001": {"shaft": SHAFT_AT, "jaw": JAW_AT, "driver": None},
    "frame_0002": {"shaft": SHAFT_AT, "jaw": JAW_AT, "driver": DRIVER_CROSSING},
    "frame_0003": {"shaft": SHAFT_AT, "jaw": None, "driver": DRIVER_AWAY},
    "frame_0004": {"shaft": None, "jaw": None, "driver": DRIVER_AWAY},
}


def write_and_render(folder: Path, objects: dict[str, Any], poses: dict[str, dict[str, Any]],
                     g: dict[str, Gaussians]) -> tuple[Path, dict[str, Any]]:
    """Write the assets and scenario in ``folder``, render it; return (out, manifest)."""
    (folder / "assets").mkdir(parents=True)
    for name, gaussians in g.items():
        save_inria_ply(folder / "assets" / f"{name}.ply", gaussians)
    data = {
        "format": "gs-scenario", "version": 1, "classes": ["needle_driver", "grasper"],
        "assets": {name: {"ply": f"assets/{name}.ply"} for name in g},
        "objects": objects,
        "output": {"min_visible_pixels": 5, "val_fraction": 0.0, "yolo_task": "segment",
                   "amodal": True},
        "frames": [{"name": name,
                    "camera": {"width": WIDTH, "height": HEIGHT, "K": K,
                               "world_to_camera": look_down(1.0)},
                    "poses": {"scene": np.eye(4).tolist(), **frame_poses}}
                   for name, frame_poses in poses.items()],
    }
    scenario = folder / "scenario.json"
    scenario.write_text(json.dumps(data))
    out = folder / "out"
    assert main(["render", str(scenario), "--out", str(out), "--device", "cpu",
                 "--progress", "none"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"]
    return out, manifest


def matrix(value: Any) -> list[list[float]]:
    return translation(*value) if isinstance(value, tuple) else value


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """Shaft and jaw as two parts of instance ``grasper``; the driver lies between them
    in file order (so the parts are not neighbours)."""
    objects = {"scene": {"asset": "tissue", "role": "background"},
               "shaft": {"asset": "shaft", "role": "instrument", "class": "grasper",
                         "instance": "grasper"},
               "driver": {"asset": "driver", "role": "instrument", "class": "needle_driver"},
               "jaw": {"asset": "jaw", "role": "instrument", "class": "grasper",
                       "instance": "grasper"}}
    poses = {name: {obj: matrix(p) for obj, p in frame.items() if p is not None}
             for name, frame in FRAMES.items()}
    return write_and_render(tmp_path_factory.mktemp("parts"), objects, poses, assets())


@pytest.fixture(scope="module")
def baked(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """The oracle for the frames where both parts are present: one object whose asset
    holds both parts already translated to their poses, posed by the identity."""
    g = assets()
    g["grasper"] = Gaussians.concat([moved(g.pop("shaft"), SHAFT_AT), moved(g.pop("jaw"), JAW_AT)])
    objects = {"scene": {"asset": "tissue", "role": "background"},
               "grasper": {"asset": "grasper", "role": "instrument", "class": "grasper"},
               "driver": {"asset": "driver", "role": "instrument", "class": "needle_driver"}}
    poses = {name: {"grasper": np.eye(4).tolist(),
                    **({"driver": frame["driver"]} if frame["driver"] else {})}
             for name, frame in FRAMES.items() if frame["jaw"] is not None}
    return write_and_render(tmp_path_factory.mktemp("baked"), objects, poses, g)


def read(out: Path, relative: str) -> np.ndarray:
    image = cv2.imread(str(out / relative), cv2.IMREAD_UNCHANGED)
    assert image is not None, relative
    return image


def frames_of(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in manifest["frames"]}


def pixel(at: tuple[float, float, float]) -> tuple[int, int]:
    """(row, column) of the pixel showing world point ``at`` (camera at height 1, looking
    down -z: u = cx + fx x / depth, v = cy - fy y / depth)."""
    depth = 1.0 - at[2]
    return (int(K[1][2] - K[1][1] * at[1] / depth), int(K[0][2] + K[0][0] * at[0] / depth))


def test_manifest_lists_one_instance_with_its_parts(parts):
    _, manifest = parts
    assert manifest["instruments"] == [
        {"id": 1, "instance": "grasper", "object": "shaft", "objects": ["shaft", "jaw"],
         "class": "grasper", "class_index": 1},
        {"id": 2, "instance": "driver", "object": "driver", "objects": ["driver"],
         "class": "needle_driver", "class_index": 0}]
    listed = {name: [(i["id"], i["objects"]) for i in f["instances"]]
              for name, f in frames_of(manifest).items()}
    assert listed == {"frame_0001": [(1, ["shaft", "jaw"])],
                      "frame_0002": [(1, ["shaft", "jaw"]), (2, ["driver"])],
                      "frame_0003": [(1, ["shaft"]), (2, ["driver"])],
                      "frame_0004": [(2, ["driver"])]}


def test_parts_render_exactly_as_one_object_made_of_both(parts, baked):
    (out, manifest), (out_b, manifest_b) = parts, baked
    frames, frames_b = frames_of(manifest), frames_of(manifest_b)
    assert set(frames_b) == {"frame_0001", "frame_0002"}
    for name, fb in frames_b.items():
        f = frames[name]
        for key in ("image", "mask", "label"):
            a, b = (out / f[key]).read_bytes(), (out_b / fb[key]).read_bytes()
            assert a == b, f"{name}: {key} differs from the baked object's"
        for key in ("box", "visible_pixels", "labelled", "amodal_pixels", "class_index"):
            assert [i[key] for i in f["instances"]] == [i[key] for i in fb["instances"]]
        assert f["amodal"].keys() == fb["amodal"].keys()
        for iid, rel in f["amodal"].items():
            assert np.array_equal(read(out, rel), read(out_b, fb["amodal"][iid]))


def test_a_gap_between_parts_still_gives_one_mask_value_box_and_polygon(parts):
    out, manifest = parts
    f = frames_of(manifest)["frame_0001"]
    mask = read(out, f["mask"])
    assert set(np.unique(mask).tolist()) == {0, 1}
    shaft_tip = (SHAFT_AT[0] + 0.15, SHAFT_AT[1], SHAFT_AT[2])
    jaw_start = (JAW_AT[0] - 0.04, JAW_AT[1], JAW_AT[2])
    gap = pixel(((shaft_tip[0] + jaw_start[0]) / 2, SHAFT_AT[1], SHAFT_AT[2]))
    assert mask[pixel(SHAFT_AT)] == 1 and mask[pixel(JAW_AT)] == 1 and mask[gap] == 0
    count, _ = cv2.connectedComponents((mask == 1).astype(np.uint8))
    assert count - 1 >= 2, "the parts should show as separate fragments"
    ys, xs = np.nonzero(mask == 1)
    (inst,) = f["instances"]
    assert inst["box"] == [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    rows = (out / f["label"]).read_text().splitlines()
    assert len(rows) == 1 and rows[0].split()[0] == "1"
    polygon = np.array([float(v) for v in rows[0].split()[1:]]).reshape(-1, 2) * [WIDTH, HEIGHT]
    # one polygon covering both fragments: it reaches from the shaft's left end to the jaw
    assert polygon[:, 0].min() <= xs.min() + 1 and polygon[:, 0].max() >= xs.max()


def test_coco_has_one_annotation_per_instance_reproducing_the_mask(parts):
    from pycocotools.coco import COCO

    out, manifest = parts
    coco = COCO(str(out / "annotations" / "instances_train.json"))
    frames = frames_of(manifest)
    by_image = {img["file_name"]: img["id"] for img in coco.loadImgs(coco.getImgIds())}
    seen = 0
    for name, f in frames.items():
        mask = read(out, f["mask"])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=by_image[f"{name}.png"]))
        labelled = [i for i in f["instances"] if i["labelled"]]
        assert sorted(a["attributes"]["instance_id"] for a in anns) == [i["id"] for i in labelled]
        for ann in anns:
            iid = ann["attributes"]["instance_id"]
            assert np.array_equal(coco.annToMask(ann).astype(bool), mask == iid)
            entry = next(i for i in labelled if i["id"] == iid)
            assert ann["attributes"]["objects"] == entry["objects"]
            assert ann["attributes"]["instance"] == entry["instance"]
            assert ann["category_id"] == entry["class_index"] + 1
            seen += 1
    assert seen == manifest["labelled_instances"] == 6


def test_occluded_parts_keep_their_amodal_mask(parts):
    out, manifest = parts
    f = frames_of(manifest)["frame_0002"]
    mask = read(out, f["mask"])
    amodal = read(out, f["amodal"]["1"]) == 255
    grasper = next(i for i in f["instances"] if i["id"] == 1)
    assert mask[pixel(SHAFT_AT)] == 2, "the driver lies across the shaft here"
    assert amodal[pixel(SHAFT_AT)] and amodal[pixel(JAW_AT)]
    assert np.all(amodal[mask == 1]), "every visible pixel of the instance is in its amodal mask"
    assert 0 < grasper["visible_fraction"] < 1
    assert grasper["amodal_pixels"] == int(amodal.sum()) > grasper["visible_pixels"]
    # the amodal mask of the whole instance covers both parts: more than the visible
    # pixels of frame 1, where nothing hides either part
    clear = frames_of(manifest)["frame_0001"]["instances"][0]
    assert clear["visible_fraction"] == 1.0
    assert grasper["amodal_pixels"] == clear["amodal_pixels"]


def test_a_part_absent_from_poses_leaves_the_other_labelled(parts):
    out, manifest = parts
    frames = frames_of(manifest)
    both = read(out, frames["frame_0001"]["mask"])
    f = frames["frame_0003"]
    mask = read(out, f["mask"])
    assert mask[pixel(SHAFT_AT)] == 1 and mask[pixel(JAW_AT)] == 0
    grasper = next(i for i in f["instances"] if i["id"] == 1)
    assert grasper["objects"] == ["shaft"] and grasper["object"] == "shaft"
    assert grasper["labelled"] and grasper["visible_pixels"] == int((mask == 1).sum())
    assert grasper["visible_pixels"] < int((both == 1).sum())
    assert grasper["amodal_pixels"] < frames["frame_0001"]["instances"][0]["amodal_pixels"]
    classes = sorted(row.split()[0] for row in (out / f["label"]).read_text().splitlines())
    assert classes == ["0", "1"]


def test_the_scenario_copy_keeps_the_instances(parts):
    out, _ = parts
    s = load_scenario(out / "scenario.json")
    assert [(i.instance_id, i.objects) for i in s.instances] == [
        (1, ("shaft", "jaw")), (2, ("driver",))]
