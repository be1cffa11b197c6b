"""gs_contract.scenario: the fuzzing fixes (one line naming the file and the JSON path,
exit 2 through the CLI, no traceback), the content fingerprint, the single vocabulary,
the memory check, and reading a scenario without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gs_contract.errors import InputError
from gs_contract.scenario import (
    FRAME_NAME_RULE,
    OutputSettings,
    RenderSettings,
    check_frame_memory,
    frame_memory_bytes,
    is_valid_frame_name,
    load_scenario,
    output_defaults,
    parse_scenario,
    physical_memory_bytes,
    render_defaults,
    scenario_fingerprint,
)
from tests.scenario_factory import modified, scenario_dict, write_scenario

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Assets and a valid scenario.json; tests write their variants next to it."""
    path = tmp_path_factory.mktemp("contract")
    write_scenario(path)
    return path


def write_text(folder: Path, text: str, name: str = "bad.json") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def refusal(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_scenario(path)
    assert "\n" not in info.value.message.rstrip("\n")
    assert str(path.name) in info.value.message
    return info.value


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gs_backend", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


# --- huge numbers, deep nesting ------------------------------------------------------

HUGE = "1" + "0" * 400  # 10**400, as written in the JSON text


def _text_with(data: dict, placeholder_path: str, literal: str) -> str:
    """The scenario's JSON text with the value at ``placeholder_path`` written as
    ``literal`` (which json.dumps could not produce, e.g. a 5000-digit integer)."""
    marker = "__LITERAL__"
    return json.dumps(modified(data, placeholder_path, marker)).replace(f'"{marker}"', literal)


@pytest.mark.parametrize(("dotted", "literal", "field", "words"), [
    ("frames.0.camera.K.0.0", HUGE, "frames[0].camera.K", "entry [0][0] is too large"),
    ("frames.1.poses.driver.0.3", HUGE, "frames[1].poses.driver", "entry [0][3] is too large"),
    ("render.near", HUGE, "render.near", "number too large"),
    ("output.val_fraction", "-" + HUGE, "output.val_fraction", "number too large"),
    ("frames.0.camera.K.0.0", "1e400", "frames[0].camera.K", "NaN or infinity at [0][0]"),
    ("frames.0.camera.width", HUGE, "frames[0].camera.width", "integer of about 401 digits"),
    ("frames.0.camera.width", "1" * 5000, None, "invalid JSON"),
])
def test_huge_numbers_are_refused_in_one_line(folder, dotted, literal, field, words):
    err = refusal(write_text(folder, _text_with(scenario_dict(), dotted, literal)))
    assert err.field == field and words in err.message


def test_deep_nesting_is_refused(folder):
    err = refusal(write_text(folder, "[" * 5000 + "]" * 5000))
    assert "nested too deeply" in err.message
    data = scenario_dict()
    data["meta"] = {"note": json.loads("[" * 100 + "]" * 100)}
    err = refusal(write_text(folder, json.dumps(data)))
    assert err.field == "meta" and "nested deeper than 64" in err.message
    data["meta"] = {"note": json.loads("[" * 60 + "]" * 60)}  # deep but fine
    load_scenario(write_text(folder, json.dumps(data)))


# --- strict types and ranges ---------------------------------------------------------


@pytest.mark.parametrize(("dotted", "value", "field", "words"), [
    ("frames.0.camera.K.0.2", "32", "frames[0].camera.K", "entry [0][2] must be a number, "
                                                         "got string '32'"),
    ("frames.0.camera.world_to_camera.3.3", True, "frames[0].camera.world_to_camera",
     "entry [3][3] must be a number, got boolean true"),
    ("frames.2.poses.scene.0.0", True, "frames[2].poses.scene", "entry [0][0] must be a "
                                                                "number"),
    ("frames.2.poses.scene.1.3", "0.5", "frames[2].poses.scene", "got string '0.5'"),
    ("render.background", [0, "0", 0], "render.background", "entry [1] must be a number"),
    ("render.background", [0, 0, False], "render.background", "got boolean false"),
    ("render.background", [0, 1.5, 0], "render.background", "in [0, 1]"),
    ("render.background", [-0.1, 0, 0], "render.background", "in [0, 1]"),
    ("render.near", "0.1", "render.near", "expected a finite number"),
    ("output.split_seed", -1, "output.split_seed", "must be an integer >= 0, got number -1"),
    ("output.split_seed", True, "output.split_seed", "expected an integer"),
    ("frames.0.name", "frame_0001\n", "frames[0].name", FRAME_NAME_RULE),
    ("assets.tool.keep", [1, True], "assets.tool.keep", "flat list of integer"),
    ("assets.tool.keep", ["1"], "assets.tool.keep", "flat list of integer"),
    ("objects.driver.role", ["instrument"], "objects.driver.role", "got a list"),
])
def test_wrong_types_and_ranges_name_the_field(folder, dotted, value, field, words):
    err = refusal(write_text(folder, json.dumps(modified(scenario_dict(), dotted, value))))
    assert err.field == field, err.message
    assert words in err.message


def test_split_seed_zero_and_large_are_accepted(folder):
    for seed in (0, 2**70):
        s = parse_scenario(modified(scenario_dict(), "output.split_seed", seed),
                           folder / "scenario.json")
        assert s.output.split_seed == seed


def test_frame_name_rule_is_a_full_match():
    assert is_valid_frame_name("frame_0001") and is_valid_frame_name("a" * 128)
    for bad in ("frame_0001\n", "\nframe", "a" * 129, "_x", "a/b", "", "frame 1"):
        assert not is_valid_frame_name(bad), repr(bad)


# --- paths that are not regular files ------------------------------------------------


def test_non_regular_asset_and_keep_paths_say_what_they_are(folder, tmp_path):
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.ply"
    loop.symlink_to(tmp_path / "loop2.ply")
    (tmp_path / "loop2.ply").symlink_to(loop)
    cases = [
        ("assets.tool.ply", "/dev/zero", "assets.tool.ply", "a character device"),
        ("assets.tool.ply", str(loop), "assets.tool.ply", "a symbolic link loop"),
        ("assets.tool.ply", str(tmp_path), "assets.tool.ply", "a directory"),
        ("assets.tool.keep", str(fifo), "assets.tool.keep", "a named pipe (FIFO)"),
        ("assets.tool.ply", "assets/none.ply", "assets.tool.ply", "file not found"),
    ]
    for dotted, value, field, words in cases:
        err = refusal(write_text(folder, json.dumps(modified(scenario_dict(), dotted, value))))
        assert err.field == field and words in err.message, err.message
    err = refusal(Path("/dev/zero"))  # the scenario itself
    assert "a character device" in err.message


# --- the CLI: exit 2, one line -------------------------------------------------------


@pytest.mark.parametrize(("make", "words"), [
    (lambda: json.dumps(modified(scenario_dict(), "output.split_seed", -1)),
     ["output.split_seed", ">= 0"]),
    (lambda: _text_with(scenario_dict(), "render.near", HUGE), ["render.near", "too large"]),
    (lambda: "[" * 5000 + "]" * 5000, ["nested too deeply"]),
    (lambda: json.dumps(modified(scenario_dict(), "frames.0.name", "frame_0001\n")),
     ["frames[0].name"]),
    (lambda: json.dumps(modified(scenario_dict(), "assets.tool.ply", "/dev/zero")),
     ["assets.tool.ply", "character device"]),
])
def test_cli_refuses_bad_scenarios_with_exit_2_and_one_line(folder, tmp_path, make, words):
    path = write_text(folder, make(), name=f"cli_{tmp_path.name}.json")
    proc = cli("render", str(path), "--out", str(tmp_path / "out"), "--progress", "none")
    assert_one_line_exit_2(proc, path.name, *words)
    assert not (tmp_path / "out").exists()


# --- memory ----------------------------------------------------------------------------


def test_memory_estimate_and_refusal(folder):
    s = load_scenario(folder / "scenario.json")  # 64 x 48, 2 instruments, no depth
    channels = 3 + 2 + 1
    need = frame_memory_bytes(64, 48, channels)
    assert need == 64 * 48 * (16 * channels + 64)
    check_frame_memory(s, limit_bytes=need)  # exactly fits
    with pytest.raises(InputError) as info:
        check_frame_memory(s, limit_bytes=need - 1)
    assert info.value.field == "frames[0].camera.width"
    assert "64 x 48 frame of 6 channels needs about" in info.value.message
    deeper = parse_scenario(modified(scenario_dict(), "output.depth", True),
                            folder / "scenario.json")
    with pytest.raises(InputError, match="of 7 channels"):
        check_frame_memory(deeper, limit_bytes=need)


def test_an_impossible_image_size_is_refused_before_rendering(folder, tmp_path):
    data = scenario_dict(frames=2)
    data["frames"][1]["camera"].update(width=32768, height=32768)
    s = parse_scenario(data, folder / "scenario.json")
    need = frame_memory_bytes(32768, 32768, 6)
    memory = physical_memory_bytes()
    if memory is None or memory >= need:
        pytest.skip("this machine could hold a 32768 x 32768 frame")
    with pytest.raises(InputError, match=r"frames\[1\]\.camera\.width: a 32768 x 32768 frame"):
        check_frame_memory(s)
    path = write_text(folder, json.dumps(data), name="huge_image.json")
    proc = cli("render", str(path), "--out", str(tmp_path / "out"), "--progress", "none")
    assert_one_line_exit_2(proc, "frames[1].camera.width", "GiB", "smaller image size")


# --- the fingerprint ---------------------------------------------------------------------


def test_fingerprint_is_the_content_not_the_spelling(folder):
    path = folder / "scenario.json"
    base = parse_scenario(scenario_dict(), path).fingerprint()
    spelled_out = scenario_dict()
    spelled_out["render"] = render_defaults()
    spelled_out["output"] = {**output_defaults(), "min_visible_pixels": 5}
    spelled_out["frames"][0]["camera"]["width"] = 64.0
    spelled_out["frames"][0]["poses"]["scene"] = [[int(x) for x in row] for row in np.eye(4)]
    spelled_out["assets"]["tissue"]["ply"] = str(folder / "assets" / "tissue.ply")
    spelled_out["meta"] = {"exported_by": "test"}
    assert parse_scenario(spelled_out, path).fingerprint() == base
    assert scenario_fingerprint(scenario_dict(), path) == base

    np.save(folder / "keep.npy", np.array([3, 1, 2]))
    listed = parse_scenario(modified(scenario_dict(), "assets.tool.keep", [2, 3, 1, 1]), path)
    in_file = parse_scenario(modified(scenario_dict(), "assets.tool.keep", "keep.npy"), path)
    assert listed.fingerprint() == in_file.fingerprint() != base

    data = scenario_dict()
    data["objects"] = dict(reversed(list(data["objects"].items())))  # other instance ids
    assert parse_scenario(data, path).fingerprint() != base
    for dotted, value in (("output.mask_threshold", 0.6), ("render.background", [0, 0, 1]),
                          ("frames.0.name", "f0"), ("classes", ["needle_driver", "grasper",
                                                                "x"])):
        assert parse_scenario(modified(scenario_dict(), dotted, value), path).fingerprint() \
            != base, dotted


def test_defaults_have_one_home():
    assert render_defaults() == RenderSettings().to_json()
    assert output_defaults() == OutputSettings().to_json()
    render_defaults()["background"].append(9)  # a fresh copy each time
    assert render_defaults()["background"] == [0.0, 0.0, 0.0]


# --- reading without torch ---------------------------------------------------------------


def test_reading_and_fingerprinting_a_scenario_imports_no_torch(folder):
    code = (
        "import sys, gs_contract.scenario as s\n"
        f"scenario = s.load_scenario({str(folder / 'scenario.json')!r})\n"
        "scenario.fingerprint()\n"
        "assert scenario.frames[0].similarities\n"
        "print(sorted(m for m in ('torch', 'gsplat', 'cv2', 'bpy', 'gs_backend')"
        " if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
