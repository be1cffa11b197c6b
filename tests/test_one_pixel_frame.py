"""A 1x1 image renders and is labelled (it ended in an OpenCV traceback: cv2.compare
reads a 1x1 array as a scalar)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from gs_backend.labels import instance_stats
from gs_backend.labels.boxes import Box
from tests.scenario_factory import scenario_dict, translation, write_scenario

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", [0, 1, 2])
def test_instance_stats_of_a_single_pixel(value):
    stats = instance_stats(np.full((1, 1), value, np.uint16), 2)
    if value == 0:
        assert stats == {}
    else:
        assert list(stats) == [value]
        assert stats[value].pixels == 1
        assert stats[value].box == Box(xmin=0, ymin=0, xmax=0, ymax=0)


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_a_one_pixel_scenario_renders_with_labels(tmp_path, task):
    data = scenario_dict(frames=2)
    data["output"] = {"min_visible_pixels": 1, "yolo_task": task, "val_fraction": 0.0}
    for frame in data["frames"]:
        frame["camera"].update(width=1, height=1, K=[[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
        frame["poses"]["driver"] = translation(0.0, 0.0, 0.1)  # right under the camera
        frame["poses"].pop("grasper", None)
    scenario = write_scenario(tmp_path, data)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "gs_backend", "render", str(scenario),
                           "--out", str(out), "--progress", "none"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    mask = cv2.imread(str(out / "masks" / "train" / "frame_0001.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (1, 1) and int(mask[0, 0]) == 1  # the driver's instance id
    image = cv2.imread(str(out / "images" / "train" / "frame_0001.png"))
    assert image.shape == (1, 1, 3)
    row = (out / "labels" / "train" / "frame_0001.txt").read_text().split()
    assert row[0] == "0"  # needle_driver
    values = [float(x) for x in row[1:]]
    if task == "detect":
        assert values == [0.5, 0.5, 1.0, 1.0]  # the whole image
    else:  # the pixel's outline: its four corners
        assert sorted(zip(values[::2], values[1::2], strict=True)) == \
            [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    manifest = json.loads((out / "manifest.json").read_text())
    instances = manifest["frames"][0]["instances"]
    assert [(i["id"], i["visible_pixels"], i["box"]) for i in instances] == [(1, 1, [0, 0, 1, 1])]
