"""``tracking.format: "csv"``: the contract's own tracker table (DESIGN contract 8).

A header ``timestamp,sensor,qw,qx,qy,qz,tx,ty,tz`` (any column order; other columns are
ignored) and one row per sample: the tracker time in seconds, the sensor's name, and
``tracker_from_sensor`` as a quaternion (w first, either sign) and a translation in
tracker units. A row whose seven pose cells are all empty or ``nan`` is a missing
sample and is skipped; a missing sample may also simply have no row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from gs_contract.recording.csvtable import read_csv_rows
from gs_contract.recording.samples import SampleRow, unit_quaternion

CSV_COLUMNS = ("timestamp", "sensor", "qw", "qx", "qy", "qz", "tx", "ty", "tz")
POSE_COLUMNS = CSV_COLUMNS[2:]


def read_csv_samples(path: Path, frame_rate_hz: float | None = None) -> Iterator[SampleRow]:
    """The samples of a ``"csv"`` tracker file (``frame_rate_hz`` is not used: the table
    has its own timestamps)."""
    del frame_rate_hz
    for row in read_csv_rows(path, CSV_COLUMNS):
        if all(row.cells[c].lower() in ("", "nan") for c in POSE_COLUMNS):
            continue  # a missing sample
        time_s = row.number("timestamp")
        sensor = row.text("sensor")
        values = [row.number(c) for c in POSE_COLUMNS]
        try:
            quaternion = unit_quaternion(values[:4])
        except ValueError as exc:
            raise row.fail("/".join(POSE_COLUMNS[:4]), str(exc)) from None
        yield sensor, time_s, quaternion + values[4:], row.line
