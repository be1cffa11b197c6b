"""``tracking.format: "ndi"``: the CSV of NDI's Combined API sample application.

Files are written here the way that application lays them out (label lines, then per
frame: the tool count and per tool ToolInfo, Frame#, PortHandle, Face#, TransformStatus,
Q0..Tz, Error, #Markers and four cells per marker; ``Missing`` tools with empty cells).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gs_contract.errors import InputError
from gs_contract.recording import read_recording, read_tracking, replay_file
from tests.test_contract_recording import write_recording

LABELS = ("#Tools,ToolInfo,Frame#,PortHandle,Face#,TransformStatus,Q0,Qx,Qy,Qz,Tx,Ty,Tz,"
          "Error,Markers,State,Tx,Ty,Tz\n"
          ",ToolInfo,Frame#,PortHandle,Face#,TransformStatus,Q0,Qx,Qy,Qz,Tx,Ty,Tz,Error,"
          "#Markers,Marker0.Status,Tx,Ty,Tz,Marker1.Status,Tx,Ty,Tz"
          ",ToolInfo,Frame#,PortHandle,Face#,TransformStatus,Q0,Qx,Qy,Qz,Tx,Ty,Tz,Error,"
          "#Markers\n")


def tool(frame: int, port: int, pose: list[float] | None, markers: int = 0) -> str:
    """One tool's cells; ``pose`` None writes a Missing tool."""
    head = f"610066 s/n:3A0B{port}C00,{frame},Port:{port},0,"
    if pose is None:
        cells = head + "Missing,,,,,,,,"
    else:
        cells = head + "OK," + ",".join(f"{x:.4f}" for x in pose) + ",0.1200"
    cells += f",{markers}"
    for m in range(markers):
        cells += f",OK,{m}.5,1.25,-3" if m % 2 == 0 else ",Missing,,,"
    return cells


def frame_line(frame: int, *tools: str) -> str:
    return f"{len(tools)}," + ",".join(tools) + "\n"


def test_ndi_file_samples_per_port(tmp_path: Path) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    path = tmp_path / "ndi.csv"
    path.write_text(
        LABELS
        + frame_line(101, tool(101, 1, [1, 0, 0, 0, 10, 20, 30], markers=2),
                     tool(101, 2, [c, s, 0, 0, -1, -2, -3]))
        + frame_line(100, tool(100, 1, [-1, 0, 0, 0, 11, 21, 31], markers=2),
                     tool(100, 2, None))
        + "\n"
        + frame_line(103, tool(103, 1, None, markers=2), tool(103, 2, [-c, -s, 0, 0, 0, 0, 0])),
        encoding="utf-8")
    tracks = read_tracking(path, "ndi", frame_rate_hz=40.0)
    assert sorted(tracks) == ["Port:1", "Port:2"]
    port1, port2 = tracks["Port:1"], tracks["Port:2"]
    np.testing.assert_array_equal(port1.times_s, [100 / 40, 101 / 40])
    np.testing.assert_array_equal(port1.translations, [[11, 21, 31], [10, 20, 30]])
    np.testing.assert_array_equal(port1.lines, [4, 3])
    np.testing.assert_array_equal(port2.times_s, [101 / 40, 103 / 40])
    expected = np.array([c, s, 0, 0]).round(4)
    np.testing.assert_allclose(port2.quaternions_wxyz[0], expected / np.linalg.norm(expected),
                               atol=1e-15)


def test_ndi_recording_replays_like_its_csv_twin(tmp_path: Path) -> None:
    csv_path = write_recording(tmp_path / "csv")
    ndi_folder = tmp_path / "ndi"
    ndi_path = write_recording(ndi_folder, **{
        "tracking.file": "ndi.csv", "tracking.format": "ndi", "tracking.frame_rate_hz": 40,
        "camera.sensor": "Port:1", "objects.driver.sensor": "Port:2"})
    (ndi_folder / "ndi.csv").write_text(
        LABELS
        + frame_line(0, tool(0, 1, [1, 0, 0, 0, 0, 0, 0]), tool(0, 2, [1, 0, 0, 0, 0, 0, 5]))
        + frame_line(2, tool(2, 1, None), tool(2, 2, None))
        + frame_line(4, tool(4, 1, [1, 0, 0, 0, 10, 0, 0]),
                     tool(4, 2, [1, 0, 0, 0, 0, 10, 5])), encoding="utf-8")
    from_csv, from_ndi = replay_file(csv_path), replay_file(ndi_path)
    assert from_ndi.image_names == from_csv.image_names
    for a, b in zip(from_csv.scenario["frames"], from_ndi.scenario["frames"], strict=True):
        np.testing.assert_allclose(b["poses"]["driver"], a["poses"]["driver"], atol=1e-12)
        np.testing.assert_allclose(b["camera"]["world_to_camera"],
                                   a["camera"]["world_to_camera"], atol=1e-12)


@pytest.mark.parametrize(("line", "where", "words"), [
    (frame_line(5, tool(5, 1, [1, 0, 0, 0, 0, 0, 0])).replace("0.0000,0.1200", "x,0.1200"),
     "line 3, column Tz (cell 13)", "expected a number, got 'x'"),
    ("two," + tool(5, 1, [1, 0, 0, 0, 0, 0, 0]) + "\n", "line 3, column #Tools (cell 1)",
     "expected an integer"),
    (frame_line(5, tool(5, 1, [1, 0, 0, 0, 0, 0, 0])).replace(",5,Port", ",5.5,Port"),
     "line 3, column Frame# (cell 3)", "expected an integer, got '5.5'"),
    (frame_line(5, tool(5, 1, [2, 0, 0, 0, 0, 0, 0])), "line 3, column Q0/Qx/Qy/Qz (cell 7)",
     "quaternion norm 2"),
    ("2," + tool(5, 1, [1, 0, 0, 0, 0, 0, 0]) + "\n", "line 3", "ends inside tool 2 of 2"),
    (frame_line(5, tool(5, 1, [1, 0, 0, 0, 0, 0, 0], markers=1))[:-5] + "\n", "line 3",
     "1 tools and their markers take 19"),
    (frame_line(5, tool(5, 1, [1, 0, 0, 0, 0, 0, 0])).replace("\n", ",7\n"), "line 3",
     "16 cells, but 1 tools"),
])
def test_bad_ndi_lines_name_line_and_column(tmp_path: Path, line: str, where: str,
                                            words: str) -> None:
    path = tmp_path / "ndi.csv"
    path.write_text(LABELS + line, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_tracking(path, "ndi", frame_rate_hz=40.0)
    assert caught.value.message.startswith(f"{path}: {where}: "), caught.value.message
    assert words in caught.value.message


@pytest.mark.parametrize(("tracking", "words"), [
    ({"file": "poses.csv", "format": "ndi"}, "tracking.frame_rate_hz: missing"),
    ({"file": "poses.csv", "format": "ndi", "frame_rate_hz": -40},
     "tracking.frame_rate_hz: must be positive"),
    ({"file": "poses.csv", "format": "csv", "frame_rate_hz": 40},
     "tracking.frame_rate_hz: only for formats that count frames"),
])
def test_frame_rate_is_required_by_ndi_only(tmp_path: Path, tracking: dict, words: str) -> None:
    path = write_recording(tmp_path, tracking=tracking)
    with pytest.raises(InputError, match=words):
        read_recording(path)
    json.loads(path.read_text(encoding="utf-8"))  # the file itself is untouched JSON
