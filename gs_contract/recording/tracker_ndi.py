"""``tracking.format: "ndi"``: the CSV that NDI's Combined API sample application
("CAPIsample", shipped with NDI's Combined API for Aurora and Polaris trackers) writes.

Layout, as that application writes it (its ``toolDataToCSV`` / CSV-writing code, which
many public projects copy): label lines (the first cell starts with ``#``, e.g.
``#Tools,ToolInfo,Frame#,...``, or is empty, e.g. ``,ToolInfo,Frame#,...``), then one
line per tracker frame::

    N, then for each of the N tools:
      ToolInfo, Frame#, PortHandle, Face#, TransformStatus, Q0, Qx, Qy, Qz, Tx, Ty, Tz,
      Error, #Markers, then per marker: Status, Tx, Ty, Tz

``Q0`` is the quaternion's scalar part; translations are in millimetres; a tool that was
not seen has ``TransformStatus`` ``Missing`` and empty pose cells (the sample is skipped).
The file holds no clock, only the tracker's frame counter: a sample's time is
``Frame# / tracking.frame_rate_hz``. A sensor is named by its ``PortHandle`` cell as
written (e.g. ``Port:10``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gs_contract.errors import InputError
from gs_contract.recording.csvtable import csv_reader
from gs_contract.recording.samples import SampleRow, unit_quaternion

TOOL_COLUMNS = ("ToolInfo", "Frame#", "PortHandle", "Face#", "TransformStatus",
                "Q0", "Qx", "Qy", "Qz", "Tx", "Ty", "Tz", "Error", "#Markers")
MARKER_CELLS = 4  # Status, Tx, Ty, Tz
MISSING = "missing"


def read_ndi_samples(path: Path, frame_rate_hz: float | None) -> Iterator[SampleRow]:
    """The samples of an NDI CAPI-sample CSV file (see the module docstring).

    Raises:
        InputError: no frame rate given; a line that is not a label line and not a frame
            line of the layout (naming the line, the cell and the column).
    """
    if frame_rate_hz is None or not frame_rate_hz > 0:
        raise InputError(path, None, "the 'ndi' format counts frames: give the tracker's "
                                     "frame rate as tracking.frame_rate_hz")
    with csv_reader(path) as reader:
        for cells in reader:
            cells = [c.strip() for c in cells]
            if not any(cells) or cells[0] == "" or cells[0].startswith("#"):
                continue  # a blank or label line
            yield from _frame_line(path, reader.line_num, cells, frame_rate_hz)


def _frame_line(path: Path, line: int, cells: list[str],
                frame_rate_hz: float) -> Iterator[SampleRow]:
    def refuse(cell: int, column: str, problem: str) -> InputError:
        return InputError(path, f"line {line}, column {column} (cell {cell + 1})", problem)

    def integer(cell: int, column: str) -> int:
        try:
            return int(cells[cell])
        except ValueError:
            raise refuse(cell, column, f"expected an integer, got {cells[cell]!r}") from None

    tools = integer(0, "#Tools")
    start = 1
    for tool in range(tools):
        if start + len(TOOL_COLUMNS) > len(cells):
            raise InputError(path, f"line {line}", f"ends inside tool {tool + 1} of {tools} "
                                                   f"({len(cells)} cells)")
        cell = dict(zip(TOOL_COLUMNS, range(start, start + len(TOOL_COLUMNS)), strict=True))
        markers = integer(cell["#Markers"], "#Markers")
        if markers < 0:
            raise refuse(cell["#Markers"], "#Markers", f"negative count {markers}")
        start = cell["#Markers"] + 1 + MARKER_CELLS * markers
        if cells[cell["TransformStatus"]].lower() == MISSING:
            continue
        sensor = cells[cell["PortHandle"]]
        if not sensor:
            raise refuse(cell["PortHandle"], "PortHandle", "empty cell")
        frame = integer(cell["Frame#"], "Frame#")
        values = []
        for column in ("Q0", "Qx", "Qy", "Qz", "Tx", "Ty", "Tz"):
            try:
                values.append(float(cells[cell[column]]))
            except ValueError:
                raise refuse(cell[column], column, f"expected a number, got "
                                                   f"{cells[cell[column]]!r}") from None
            if values[-1] != values[-1] or abs(values[-1]) == float("inf"):
                raise refuse(cell[column], column, f"expected a finite number, got "
                                                   f"{cells[cell[column]]!r}")
        try:
            quaternion = unit_quaternion(values[:4])
        except ValueError as exc:
            raise refuse(cell["Q0"], "Q0/Qx/Qy/Qz", str(exc)) from None
        yield sensor, frame / frame_rate_hz, quaternion + values[4:], line
    if start > len(cells) or any(cells[start:]):
        raise InputError(path, f"line {line}",
                         f"{len(cells)} cells, but {tools} tools and their markers take "
                         f"{start}")
