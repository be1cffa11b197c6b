"""Scenario validation: every violation names the JSON path of the offending field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gs_contract.errors import InputError, PoseError
from gs_contract.scenario import load_scenario, parse_scenario
from tests.scenario_factory import DELETE, modified, scenario_dict, write_scenario


@pytest.fixture()
def scenario_dir(tmp_path):
    write_scenario(tmp_path)
    return tmp_path


def _error(folder, data) -> InputError:
    path = folder / "scenario.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as info:
        load_scenario(path)
    assert str(path.name) in info.value.message
    return info.value


def test_valid_scenario_parses_with_defaults(scenario_dir):
    s = load_scenario(scenario_dir / "scenario.json")
    assert s.classes == ("needle_driver", "grasper")
    assert [o.name for o in s.instruments] == ["driver", "grasper"]
    assert [o.instance_id for o in s.instruments] == [1, 2]
    assert [o.class_index for o in s.instruments] == [0, 1]
    assert s.objects["scene"].instance_id is None
    assert s.assets["tissue"].ply == (scenario_dir / "assets/tissue.ply").resolve()
    assert s.render.background == (0.0, 0.0, 0.0) and s.render.sh_degree is None
    assert s.output.min_visible_pixels == 5 and s.output.val_fraction == 0.2
    assert s.output.mask_threshold == 0.5 and s.output.yolo_task == "detect"
    assert len(s.frames) == 4 and "grasper" not in s.frames[-1].poses
    assert s.frames[0].camera.K.shape == (3, 3)


def test_instance_ids_follow_file_order_of_instruments(scenario_dir):
    data = scenario_dict()
    objects = data["objects"]
    data["objects"] = {"grasper": objects["grasper"], "scene": objects["scene"],
                       "driver": objects["driver"]}
    s = parse_scenario(data, scenario_dir / "scenario.json")
    assert {o.name: o.instance_id for o in s.instruments} == {"grasper": 1, "driver": 2}


def test_fingerprint_changes_with_content_not_with_meta(scenario_dir):
    base = parse_scenario(scenario_dict(), scenario_dir / "scenario.json")
    with_meta = parse_scenario({**scenario_dict(), "meta": {"note": "x"}},
                               scenario_dir / "scenario.json")
    other = parse_scenario(modified(scenario_dict(), "output.val_fraction", 0.5),
                           scenario_dir / "scenario.json")
    assert base.fingerprint() == with_meta.fingerprint()
    assert base.fingerprint() != other.fingerprint()


def test_fingerprint_follows_asset_content_not_location(scenario_dir, tmp_path_factory):
    import shutil

    before = load_scenario(scenario_dir / "scenario.json").fingerprint()
    moved = tmp_path_factory.mktemp("moved") / "project"
    shutil.copytree(scenario_dir, moved)  # scenario and assets moved together
    assert load_scenario(moved / "scenario.json").fingerprint() == before
    tool = moved / "assets" / "tool.ply"
    data = bytearray(tool.read_bytes())
    data[-1] ^= 0x01  # one bit of one Gaussian changed in place
    tool.write_bytes(bytes(data))
    assert load_scenario(moved / "scenario.json").fingerprint() != before
    tool.unlink()
    with pytest.raises(InputError, match=r"assets\.tool\.ply"):
        parse_scenario(scenario_dict(), moved / "scenario.json").fingerprint()


@pytest.mark.parametrize(
    ("dotted", "value", "field", "words"),
    [
        ("format", "gs-scene", "format", "gs-scenario"),
        ("version", 2, "version", "unsupported version 2"),
        ("assets.tissue.ply", "assets/missing.ply", "assets.tissue.ply", "file not found"),
        ("objects.driver.asset", "nope", "objects.driver.asset", "unknown asset 'nope'"),
        ("objects.driver.class", "scalpel", "objects.driver.class", "'scalpel' is not in"),
        ("objects.driver.role", "tool", "objects.driver.role", "expected one of"),
        ("frames.1.name", "frame_0001", "frames[1].name", "duplicate frame name"),
        ("frames.0.name", "../evil", "frames[0].name", "file name"),
        ("frames.0.camera.width", 0, "frames[0].camera.width", "positive"),
        ("frames.0.camera.height", -5, "frames[0].camera.height", "positive"),
        ("frames.0.camera.width", 64.5, "frames[0].camera.width", "integer"),
        ("frames.0.camera.K", [[1, 0], [0, 1]], "frames[0].camera.K", "shape"),
        ("frames.0.camera.K", [[-70, 0, 32], [0, 70, 24], [0, 0, 1]], "frames[0].camera.K",
         "positive"),
        ("frames.0.camera.K", [[70, 0, 32], [0, 70, 24], [0, 0, 2]], "frames[0].camera.K",
         "no skew"),
        ("frames.0.camera.world_to_camera", np.diag([2, 2, 2, 1]).tolist(),
         "frames[0].camera.world_to_camera", "rotation"),
        ("frames.0.poses.ghost", np.eye(4).tolist(), "frames[0].poses.ghost", "unknown object"),
        ("frames.2.camera", DELETE, "frames[2].camera", "missing"),
        ("render.near", -1, "render.near", "near"),
        ("render.sh_degree", 4, "render.sh_degree", "0-3"),
        ("output.val_fraction", 1.5, "output.val_fraction", "[0, 1]"),
        ("output.yolo_task", "pose", "output.yolo_task", "detect"),
        ("output.val_fracton", 0.1, "output.val_fracton", "unknown key"),
        ("classes", DELETE, "classes", "missing"),
        ("frames", [], "frames", "no frames"),
    ],
)
def test_violations_name_the_field(scenario_dir, dotted, value, field, words):
    err = _error(scenario_dir, modified(scenario_dict(), dotted, value))
    assert err.field == field, err.message
    assert words in err.message


@pytest.mark.parametrize(
    ("matrix", "words"),
    [
        ([[1, 0.3, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "anisotropy"),
        ([[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], "anisotropy"),
        (np.diag([-1.0, -1.0, -1.0, 1.0]).tolist(), "reflection, anisotropy 0"),
        (np.diag([1.0, 0.0, 1.0, 1.0]).tolist(), "anisotropy infinite"),
        ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "4x4"),
    ],
)
def test_bad_pose_names_frame_object_and_anisotropy(scenario_dir, matrix, words):
    err = _error(scenario_dir, modified(scenario_dict(), "frames.1.poses.driver", matrix))
    assert isinstance(err, PoseError)
    assert err.field == "frames[1].poses.driver"
    assert "frame_0002" in err.message and "driver" in err.message
    assert words in err.message
    if words == "anisotropy":
        assert err.anisotropy is not None and err.anisotropy > 0.1


def test_uniform_scale_pose_is_accepted(scenario_dir):
    m = (np.diag([2.5, 2.5, 2.5, 1.0])).tolist()
    s = parse_scenario(modified(scenario_dict(), "frames.0.poses.driver", m),
                       scenario_dir / "scenario.json")
    assert np.allclose(s.frames[0].poses["driver"], m)


def test_keep_list_and_files(scenario_dir):
    data = modified(scenario_dict(), "assets.tool.keep", [5, 1, 3, 3])
    s = parse_scenario(data, scenario_dir / "scenario.json")
    assert s.assets["tool"].keep.tolist() == [1, 3, 5]
    np.save(scenario_dir / "keep.npy", np.array([7, 2]))
    s = parse_scenario(modified(scenario_dict(), "assets.tool.keep", "keep.npy"),
                       scenario_dir / "scenario.json")
    assert s.assets["tool"].keep.tolist() == [2, 7]
    err = _error(scenario_dir, modified(scenario_dict(), "assets.tool.keep", "nokeep.npy"))
    assert err.field == "assets.tool.keep" and "not found" in err.message
    err = _error(scenario_dir, modified(scenario_dict(), "assets.tool.keep", [1, -2]))
    assert "negative" in err.message


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_scenario(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "gs-scenario",\n "version": 1,,}')
    with pytest.raises(InputError) as info:
        load_scenario(bad)
    assert "invalid JSON" in info.value.message and "line 2" in info.value.message
    bad.write_text("[1, 2]")
    with pytest.raises(InputError, match="expected an object"):
        load_scenario(bad)
