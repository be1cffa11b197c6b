"""The files of an evaluation report: ``metrics.csv``, ``summary.json``, ``report.md``.

- ``metrics.csv``: header ``frame,psnr,ssim,lpips`` (then ``mask_pixels,psnr_masked,
  ssim_masked`` when masks were given), one row per pair in frame order. Numbers are
  written with full float precision (Python's ``repr``); an identical pair's PSNR is
  ``inf``; a value not computed (LPIPS without weights, a masked figure of a frame
  without instrument pixels) is an empty cell.
- ``summary.json``: ``frames``, then ``{"mean", "std", "min", "max"}`` (std with ddof 0)
  for ``psnr``, ``ssim``, ``lpips`` (``null`` when not computed) and, with masks,
  ``psnr_masked`` and ``ssim_masked``; ``overlays`` (paths relative to the report);
  ``notes``. Statistics use the finite values only: identical pairs (infinite PSNR)
  and empty masks are left out, and a note says so; a statistic with no value left is
  ``null`` in each field.
- ``report.md``: the table (metric, mean ± std, min, max), the overlays, the notes.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BASE_COLUMNS = ("frame", "psnr", "ssim", "lpips")
MASK_COLUMNS = ("mask_pixels", "psnr_masked", "ssim_masked")


@dataclass(frozen=True)
class FrameResult:
    frame: str
    psnr: float  # dB; inf for identical images
    ssim: float
    lpips: float | None  # None: not computed
    mask_pixels: int | None = None  # None: no masks given
    psnr_masked: float | None = None  # None: no masks, or no instrument pixel
    ssim_masked: float | None = None


@dataclass(frozen=True)
class Overlay:
    kind: str  # "best" | "worst"
    rank: int  # 1 = the best (or the worst) of all
    result: FrameResult
    path: str  # relative to the report folder, e.g. "overlays/best_1_frame_0003.png"


def statistics(values: Sequence[float | None]) -> dict[str, float | None]:
    """``{"mean", "std" (ddof 0), "min", "max"}`` of the finite values (None when none)."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if finite.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": float(finite.mean()), "std": float(finite.std(ddof=0)),
            "min": float(finite.min()), "max": float(finite.max())}


def metrics_csv(results: Sequence[FrameResult], masked: bool) -> str:
    """The text of ``metrics.csv``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(BASE_COLUMNS + (MASK_COLUMNS if masked else ()))
    for r in results:
        row = [r.frame, _cell(r.psnr), _cell(r.ssim), _cell(r.lpips)]
        if masked:
            row += [_cell(r.mask_pixels), _cell(r.psnr_masked), _cell(r.ssim_masked)]
        writer.writerow(row)
    return buffer.getvalue()


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else repr(float(value))


def summary(results: Sequence[FrameResult], *, masked: bool, lpips: bool,
            overlays: Sequence[Overlay], notes: Sequence[str]) -> dict[str, Any]:
    """The ``summary.json`` object."""
    out: dict[str, Any] = {
        "frames": len(results),
        "psnr": statistics([r.psnr for r in results]),
        "ssim": statistics([r.ssim for r in results]),
        "lpips": statistics([r.lpips for r in results]) if lpips else None,
    }
    if masked:
        out["psnr_masked"] = statistics([r.psnr_masked for r in results])
        out["ssim_masked"] = statistics([r.ssim_masked for r in results])
    out["overlays"] = [o.path for o in overlays]
    out["notes"] = list(notes)
    return out


def summary_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


_ROWS = (("psnr", "PSNR (dB) ↑", 2), ("ssim", "SSIM ↑", 4), ("lpips", "LPIPS ↓", 4),
         ("psnr_masked", "PSNR, instrument pixels (dB) ↑", 2),
         ("ssim_masked", "SSIM, instrument pixels ↑", 4))


def report_markdown(data: dict[str, Any], overlays: Sequence[Overlay], rendered: str,
                    real: str) -> str:
    """The text of ``report.md``: the table in the style of the paper's Table 1, the
    overlays, the notes."""
    lines = ["# Realism report", "",
             f"{data['frames']} pairs: rendered `{rendered}` against real `{real}`.", "",
             "| metric | mean ± std | min | max |", "|---|---|---|---|"]
    for key, label, digits in _ROWS:
        if key not in data:
            continue
        stats = data[key]
        if stats is None or stats["mean"] is None:
            lines.append(f"| {label} | not computed (see the notes) | | |")
            continue
        lines.append(f"| {label} | {stats['mean']:.{digits}f} ± {stats['std']:.{digits}f} "
                     f"| {stats['min']:.{digits}f} | {stats['max']:.{digits}f} |")
    lines += ["", "↑: higher is more alike; ↓: lower is more alike. Definitions: "
              "docs/evaluate.md.", ""]
    for kind, heading in (("best", "Best pairs (highest PSNR)"),
                          ("worst", "Worst pairs (lowest PSNR)")):
        shown = [o for o in overlays if o.kind == kind]
        if not shown:
            continue
        lines += [f"## {heading}", ""]
        for o in shown:
            lines += [f"{o.rank}. [{o.result.frame}]({o.path}): {figures_text(o.result)}", "",
                      f"   ![{kind} {o.rank}: {o.result.frame}]({o.path})", ""]
    if data["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in data["notes"]] + [""]
    return "\n".join(lines)


def figures_text(r: FrameResult) -> str:
    """``PSNR 27.80 dB, SSIM 0.9120, LPIPS 0.2870`` (LPIPS only when computed)."""
    text = f"PSNR {r.psnr:.2f} dB, SSIM {r.ssim:.4f}"
    return text + (f", LPIPS {r.lpips:.4f}" if r.lpips is not None else "")


def headline(data: dict[str, Any]) -> str:
    """One line of the summary's means and stds, e.g. ``PSNR 27.80 ± 1.80 dB, SSIM ...``."""
    parts = []
    for key, label, digits in _ROWS[:3]:
        stats = data.get(key)
        if stats and stats["mean"] is not None:
            unit = " dB" if key == "psnr" else ""
            parts.append(f"{label.split()[0]} {stats['mean']:.{digits}f} ± "
                         f"{stats['std']:.{digits}f}{unit}")
    return ", ".join(parts)
