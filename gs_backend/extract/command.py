"""``gs-backend extract``: read a capture, run the pipeline, write what it keeps.

Outputs (each written atomically, and only once every stage has passed and the preview,
if asked for, is rendered): ``--out`` the kept rows as an Inria PLY
(:mod:`gs_backend.extract.output`), ``--keep-out`` their sorted int64 row indices as
``.npy``, ``--preview`` the PNG sheet (:mod:`gs_backend.extract.preview`). ``--json``
prints the report on stdout; without it, one line per stage goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from gs_backend import interrupt
from gs_backend.extract.auto import StageReport
from gs_backend.extract.colour import colour_key_from_options
from gs_backend.extract.output import kept_rows_ply_bytes
from gs_backend.extract.pipeline import ExtractOptions, ExtractResult, run_extraction
from gs_contract.atomic import write_bytes_atomic
from gs_contract.crop import load_crop
from gs_contract.errors import InputError
from gs_contract.splats import SplatData, read_splat_file, usable_rows


def run_extract_command(args: argparse.Namespace) -> int:
    """Run ``gs-backend extract`` for parsed ``args``; return the exit code (0).

    Raises:
        InputError: bad options, capture or crop file, a stage that keeps nothing, an
            output that cannot be written; nothing is written then (an output whose write
            failed is absent, earlier ones are complete).
    """
    colour = colour_key_from_options(args.colour_key, args.colour_tolerance, args.colour_mode)
    capture = args.capture.absolute()
    outputs = _check_outputs(capture, {"--out": args.out, "--keep-out": args.keep_out,
                                       "--preview": args.preview})
    crop_path = args.crop.absolute() if args.crop is not None else None
    options = ExtractOptions(crop=load_crop(crop_path) if crop_path else None,
                             crop_path=crop_path, colour=colour, auto=not args.no_auto)
    say = _quiet if args.json else _stderr
    splat = read_splat_file(capture)
    say(f"read {capture.name}: {splat.count:,} rows ({splat.format}, SH degree "
        f"{splat.sh_degree})")
    interrupt.checkpoint()

    def on_stage(stage: StageReport, left: int) -> None:
        say(f"{stage.name}: removed {stage.removed:,}, {left:,} left"
            + (f" ({_params_text(stage.params)})" if stage.params else ""))

    result = run_extraction(splat, options, on_stage)
    rows = result.keep_indices()
    files: dict[str, bytes] = {"--out": kept_rows_ply_bytes(splat, rows)}
    if args.keep_out is not None:
        buffer = io.BytesIO()
        np.save(buffer, rows)
        files["--keep-out"] = buffer.getvalue()
    if args.preview is not None:
        say("rendering the preview")
        files["--preview"] = _preview_png(splat, result)
    interrupt.checkpoint()
    for option, data in files.items():
        _write(outputs[option], option, data)
    say(f"kept {result.kept:,} of {splat.count:,} rows -> {outputs['--out']}")
    if args.json:
        print(report_json(report(splat, result, outputs)))
    return 0


def report(splat: SplatData, result: ExtractResult, outputs: dict[str, Path | None]
           ) -> dict[str, Any]:
    """The ``--json`` report (docs/extract.md lists the fields)."""
    def named(option: str) -> str | None:
        path = outputs.get(option)
        return None if path is None else str(path)

    return {"capture": splat.path, "format": splat.format, "rows": splat.count,
            "usable": result.usable, "kept": result.kept, "removed": splat.count - result.kept,
            "stages": [{"name": s.name, "removed": int(s.removed), "params": s.params}
                       for s in result.stages],
            "out": named("--out"), "keep_out": named("--keep-out"),
            "preview": named("--preview")}


def _check_outputs(capture: Path, given: dict[str, Path | None]) -> dict[str, Path | None]:
    """Absolute output paths; refuse one that is the capture, a folder, or named twice."""
    out: dict[str, Path | None] = {}
    seen: dict[Path, str] = {capture.resolve(): "CAPTURE"}
    for option, path in given.items():
        if path is None:
            out[option] = None
            continue
        path = path.absolute()
        if path.is_dir():
            raise InputError(path, option, "is a folder; give a file name")
        other = seen.get(path.resolve())
        if other is not None:
            raise InputError(path, option, f"is also {other}; every output needs its own "
                                           "file and the capture is never overwritten")
        seen[path.resolve()] = option
        out[option] = path
    return out


def _preview_png(splat: SplatData, result: ExtractResult) -> bytes:
    with interrupt.deferred():  # torch's import must never see a KeyboardInterrupt
        from gs_backend.extract.preview import render_preview_png
    return render_preview_png(splat, result.keep, usable_rows(splat))


def _write(path: Path | None, option: str, data: bytes) -> None:
    assert path is not None
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise InputError(path, option, f"cannot write: {exc.strerror or exc}") from None


def report_json(summary: dict[str, Any]) -> str:
    """The ``--json`` report as indented JSON text (numpy values as plain JSON)."""
    return json.dumps(summary, indent=1, default=_json_value)


def _json_value(value: Any) -> Any:
    """numpy scalars and arrays in stage parameters as plain JSON values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _stderr(line: str) -> None:
    print(f"gs-backend extract: {line}", file=sys.stderr, flush=True)


def _quiet(line: str) -> None:
    del line
