"""The demo's instruments as raw orbit captures, extracted before use (issue 7).

Each demo instrument is wrapped in what a real capture of it holds (a table under it,
the room far away, floaters, halos: :func:`gs_backend.synthetic.capture.capture_around`),
written as ``captures/<name>.ply``, and extracted back with the same pipeline as
``gs-backend extract`` (automatic, no options) into ``assets/<name>.ply``. The report
(``captures/<name>.extract.json``: the ``--json`` report plus precision and recall against
the capture's known membership) is what ``make demo`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gs_backend.extract.command import report, report_json
from gs_backend.extract.output import kept_rows_ply_bytes
from gs_backend.extract.pipeline import ExtractOptions, run_extraction
from gs_backend.gaussians import Gaussians
from gs_backend.synthetic.capture import Label, capture_around
from gs_contract.atomic import write_bytes_atomic, write_text_atomic
from gs_contract.splats import read_splat_file

CAPTURE_DIR = "captures"


def report_path(capture: Path) -> Path:
    """``captures/<name>.extract.json`` beside ``captures/<name>.ply``."""
    return capture.with_suffix(".extract.json")


def instrument_from_capture(instrument: Gaussians, *, seed: int, capture: Path,
                            asset: Path) -> dict[str, Any]:
    """Write ``instrument`` as a raw capture, extract it into ``asset``; return the report.

    The report is the ``gs-backend extract --json`` report plus ``ground_truth``:
    precision and recall of the kept rows against the instrument's own rows.
    """
    arrays = [t.detach().cpu().numpy() for t in (instrument.means, instrument.quats,
                                                  instrument.scales, instrument.opacities,
                                                  instrument.sh)]
    raw = capture_around(*arrays, seed=seed)
    raw.save(capture)
    splat = read_splat_file(capture)
    result = run_extraction(splat, ExtractOptions())
    rows = result.keep_indices()
    write_bytes_atomic(asset, kept_rows_ply_bytes(splat, rows))
    tool = raw.labels == Label.TOOL
    hits, instrument_rows = int(tool[rows].sum()), int(tool.sum())
    summary = report(splat, result, {"--out": asset})
    summary["ground_truth"] = {"instrument_rows": instrument_rows,
                               "precision": hits / max(rows.size, 1),
                               "recall": hits / max(instrument_rows, 1)}
    write_text_atomic(report_path(capture), report_json(summary) + "\n")
    return summary

