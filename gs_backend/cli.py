"""The ``gs-backend`` command line (DESIGN contract 5).

Exit codes (:class:`gs_contract.protocol.ExitCode`, listed in ``docs/protocol.md``):
0 success; 2 bad input (one line naming the file and the field, no traceback), also an
output folder that cannot be written; 130 interrupted by Ctrl-C (the output folder stays
resumable); 1 an unexpected internal error (a bug: the traceback is printed for the
report). With ``--progress jsonl`` every failure is also an ``error`` event on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gs_backend import __version__, interrupt
from gs_backend.camera_path.command import add_camera_path_parser, run_camera_path_command
from gs_backend.cluster.command import (
    add_cluster_parsers,
    run_finalize_command,
    run_status_command,
)
from gs_backend.replay.command import add_replay_parser, run_replay_command
from gs_contract.errors import InputError
from gs_contract.protocol import ErrorEvent, ExitCode

if TYPE_CHECKING:
    from gs_backend.dataset.render_run import FrameSelection

INTERRUPTED_MESSAGE = "interrupted; finished frames are kept, run the same command to resume"
FILES_INTERRUPTED_MESSAGE = ("interrupted; each output file is either complete or absent "
                               "(atomic writes)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gs-backend",
        description="Render 3D Gaussian-splat scenarios into labelled datasets "
                    "(images, instance masks, YOLO and COCO labels).")
    parser.add_argument("--version", action="version", version=f"gs-backend {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="describe a Gaussian file (.ply, compressed .ply, .splat)")
    info.add_argument("file", type=Path, metavar="FILE")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")

    render = sub.add_parser("render", help="render a gs-scenario file into a dataset folder")
    render.add_argument("scenario", type=Path, metavar="SCENARIO")
    render.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output folder (created; re-running resumes)")
    render.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    render.add_argument("--frames", default=None, metavar="A:B",
                        help="render frames A..B-1 of the scenario's list (0-based, "
                             "Python slice; 'A:' and ':B' work, and a single index A)")
    render.add_argument("--shard", default=None, metavar="I/N|auto",
                        help="render every N-th of the selected frames starting at I "
                             "(0 <= I < N); N shards into one folder make one dataset. "
                             "auto: I/N of this Slurm or SGE array task (docs/cluster.md)")
    render.add_argument("--overwrite", action="store_true",
                        help="replace a dataset of a different scenario in --out")
    render.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="bar: a progress bar on a terminal; jsonl: one JSON event per "
                             "line on stdout; none: quiet (default: bar)")
    render.add_argument("--rasterizer", choices=("auto", "numba", "torch", "gsplat"),
                        default="auto",
                        help="auto: gsplat on CUDA, the compiled CPU rasterizer (numba) on the "
                             "CPU, the torch rasterizer on MPS; torch: the eager-torch tile "
                             "rasterizer on any device (see docs/rendering.md)")
    render.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="render on a Ray cluster: one worker per GPU (per CPU with "
                             "--device cpu), frames handed out as workers free up. ADDRESS: "
                             "the cluster (default: RAY_ADDRESS, else a local one). Needs "
                             "the [ray] extra; see docs/cluster.md")
    render.add_argument("--ray-workers", type=int, default=None, metavar="N",
                        help="with --ray: how many workers (default: one per GPU or CPU)")
    _add_extract_parser(sub)
    add_replay_parser(sub)
    add_camera_path_parser(sub)
    _add_evaluate_parser(sub)
    _add_serve_parser(sub)
    add_cluster_parsers(sub)
    return parser


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        "evaluate", help="PSNR, SSIM and LPIPS of rendered frames against real ones "
                         "(docs/evaluate.md)",
        description="Pair rendered and real images by file name stem and write "
                    "REPORT/metrics.csv, summary.json, report.md and overlays/. "
                    "See docs/evaluate.md.")
    evaluate.add_argument("--rendered", type=Path, required=True, metavar="DIR",
                          help="rendered images (a dataset folder: its images/, recursively)")
    evaluate.add_argument("--real", type=Path, required=True, metavar="DIR",
                          help="real images, one per rendered frame, same stem and size")
    evaluate.add_argument("--out", type=Path, required=True, metavar="REPORT",
                          help="report folder (created; its report files are replaced)")
    evaluate.add_argument("--lpips-weights", type=Path, metavar="FILE",
                          help="a saved lpips.LPIPS state dict (alex or vgg); without it "
                               "LPIPS is null. Never downloaded")
    evaluate.add_argument("--masks", type=Path, metavar="DIR",
                          help="visible masks (a dataset folder: its masks/) for "
                               "instrument-only PSNR and SSIM")
    evaluate.add_argument("--device", default="auto",
                          help="for LPIPS: auto, cpu, cuda or cuda:N (default: auto)")


def _add_serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="run as a local service for previews and renders (docs/sidecar.md)",
        description="Serve previews and dataset renders over HTTP. Prints one JSON line "
                    "{\"event\": \"listening\", ...} on stdout when ready.")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=0,
                       help="port (default: 0, any free port; the listening line names it)")
    serve.add_argument("--device", default="auto",
                       help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    serve.add_argument("--token-file", type=Path, metavar="F",
                       help="where to write the access token (mode 0600; default: a new "
                            "file in the user's runtime folder, removed on exit)")
    serve.add_argument("--cache-mb", type=int, metavar="MB",
                       help="memory bound of the asset cache in MiB (default: 4096)")


def _add_extract_parser(sub: argparse._SubParsersAction) -> None:
    extract = sub.add_parser(
        "extract", help="extract the instrument from a raw orbit capture (docs/extract.md)",
        description="Keep the instrument's Gaussians of an orbit capture. Stages, in order: "
                    "unusable rows dropped, --crop, --colour-key, the automatic method "
                    "(unless --no-auto). See docs/extract.md.")
    extract.add_argument("capture", type=Path, metavar="CAPTURE",
                         help="the capture (.ply, compressed .ply, .splat, .spz)")
    extract.add_argument("--out", type=Path, required=True, metavar="TOOL.ply",
                         help="the kept rows, exact copies, as an Inria PLY")
    extract.add_argument("--keep-out", type=Path, metavar="KEEP.npy",
                         help="the kept row indices (int64, sorted), what a scenario's keep "
                              "takes")
    extract.add_argument("--json", action="store_true",
                         help="print a JSON report on stdout (counts, stages, parameters)")
    extract.add_argument("--crop", type=Path, metavar="CROP.json",
                         help="a gs-crop file of keep / remove volumes (box, sphere, cylinder)")
    extract.add_argument("--colour-key", "--color-key", action="append", metavar="COLOUR",
                         dest="colour_key",
                         help="an sRGB colour R,G,B (0-1) or '#RRGGBB' compared with each "
                              "Gaussian's DC colour; repeat for several")
    extract.add_argument("--colour-tolerance", "--color-tolerance", type=float,
                         dest="colour_tolerance", metavar="DELTA_E",
                         help="largest CIELAB Delta E (CIE76) from a key colour that matches "
                              "(default: 20)")
    extract.add_argument("--colour-mode", "--color-mode", choices=("keep", "remove"),
                         default="keep", dest="colour_mode",
                         help="keep the matching Gaussians or remove them (default: keep)")
    extract.add_argument("--no-auto", action="store_true",
                         help="skip the automatic method: keep what crop and colour keep")
    extract.add_argument("--preview", type=Path, metavar="SHEET.png",
                         help="also render a PNG of orbit views, kept beside removed")


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        interrupt.install()
    args = build_parser().parse_args(argv)
    if args.command == "info":
        return _run_guarded(lambda: _info(args), jsonl=False)
    if args.command == "extract":
        return _run_guarded(lambda: _extract(args), jsonl=False,
                            interrupted=FILES_INTERRUPTED_MESSAGE)
    if args.command == "replay":
        return _run_guarded(lambda: run_replay_command(args), jsonl=False)
    if args.command == "camera-path":
        return _run_guarded(lambda: run_camera_path_command(args), jsonl=False)
    if args.command == "evaluate":
        return _run_guarded(lambda: _evaluate(args), jsonl=False,
                            interrupted=FILES_INTERRUPTED_MESSAGE)
    if args.command == "serve":
        return _run_guarded(lambda: _serve(args), jsonl=False, interrupted="interrupted")
    if args.command == "status":
        return _run_guarded(lambda: run_status_command(args), jsonl=False)
    if args.command == "finalize":
        return _run_guarded(lambda: run_finalize_command(args), jsonl=False)
    return _run_guarded(lambda: _render(args), jsonl=args.progress == "jsonl")


def _run_guarded(action: Callable[[], int], *, jsonl: bool,
                 interrupted: str = INTERRUPTED_MESSAGE) -> int:
    """Run ``action``; turn every way it can end into an exit code and one message."""
    try:
        code = action()
        interrupt.checkpoint()  # a Ctrl-C that some library swallowed still counts
        return code
    except InputError as exc:
        return _fail(ExitCode.BAD_INPUT, exc.message, "error: ", jsonl=jsonl)
    except KeyboardInterrupt:
        return _fail(ExitCode.INTERRUPTED, interrupted, "", jsonl=jsonl)
    except Exception as exc:  # a bug: keep the traceback for the report
        import traceback

        traceback.print_exc()
        return _fail(ExitCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}",
                     "", jsonl=jsonl, stderr=False)


def _fail(code: ExitCode, message: str, prefix: str, *, jsonl: bool,
          stderr: bool = True) -> int:
    """Report a failure: an ``error`` event (jsonl) and one line on stderr."""
    if jsonl:
        from gs_backend.progress import JsonlProgress

        JsonlProgress().emit(ErrorEvent(message))
    if stderr:
        print(f"gs-backend: {prefix}{message}", file=sys.stderr)
    return int(code)


def _info(args: argparse.Namespace) -> int:
    with interrupt.deferred():
        from gs_backend.io import describe_gaussians, format_summary

    info = describe_gaussians(args.file)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return ExitCode.OK


def _extract(args: argparse.Namespace) -> int:
    from gs_backend.extract.command import run_extract_command

    return run_extract_command(args)


def _evaluate(args: argparse.Namespace) -> int:
    from gs_backend.evaluate.command import run_evaluate_command

    return run_evaluate_command(args)


def _render(args: argparse.Namespace) -> int:
    with interrupt.deferred():  # torch's import must never see a KeyboardInterrupt
        from gs_backend.dataset.render_run import RenderOptions, render_dataset
        from gs_backend.devices import resolve_device
        from gs_backend.progress import make_progress
        from gs_contract.scenario import load_scenario

    scenario = load_scenario(args.scenario)
    selection = parse_selection(args.frames, args.shard, len(scenario.frames))
    progress = make_progress(args.progress)
    if args.ray is not None or args.ray_workers is not None:
        from gs_backend.cluster.ray_render import render_dataset_ray

        if args.ray_workers is not None and args.ray_workers < 1:
            raise InputError("--ray-workers", None, f"need N >= 1, got {args.ray_workers}")
        render_dataset_ray(scenario, args.out, selection, device=args.device,
                           overwrite=args.overwrite, rasterizer=args.rasterizer,
                           progress=progress, address=args.ray or None,
                           workers=args.ray_workers)
        return ExitCode.OK
    device = resolve_device(args.device)
    if args.rasterizer == "gsplat" and device.type != "cuda":
        raise InputError("--rasterizer", None, "gsplat needs a CUDA device (--device cuda)")
    options = RenderOptions(out_dir=args.out, device=device, selection=selection,
                            overwrite=args.overwrite, backend=args.rasterizer)
    render_dataset(scenario, options, progress)
    return ExitCode.OK


def _serve(args: argparse.Namespace) -> int:
    with interrupt.deferred():  # torch's import must never see a KeyboardInterrupt
        from gs_backend.serve.server import ServeOptions, serve

    if not 0 <= args.port <= 65535:
        raise InputError("--port", None, f"expected 0..65535, got {args.port}")
    if args.cache_mb is not None and args.cache_mb < 0:
        raise InputError("--cache-mb", None, f"expected a size >= 0, got {args.cache_mb}")
    cache = None if args.cache_mb is None else args.cache_mb * 1024 * 1024
    return serve(ServeOptions(host=args.host, port=args.port, device=args.device,
                              token_file=args.token_file, cache_bytes=cache))


_SLICE = re.compile(r"^\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?$")
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_selection(frames: str | None, shard: str | None, total: int) -> FrameSelection:
    """``--frames A:B`` and ``--shard I/N`` -> a FrameSelection (validated)."""
    start, stop = 0, None
    if frames is not None:
        m = _SLICE.match(frames)
        if not m or (m.group(1) == "" and m.group(2) is None):
            raise InputError("--frames", None, f"expected A:B, A: , :B or A, got {frames!r}")
        a, b = m.group(1), m.group(2)
        start = int(a) if a else 0
        if b is None:  # a single index
            if not -total <= start < total:
                raise InputError("--frames", None,
                                 f"frame {start} out of range: the scenario has {total} frames")
            start = start % total
            stop = start + 1
        else:
            stop = int(b) if b else None
        if not frames_nonempty(start, stop, total):
            raise InputError("--frames", None,
                             f"{frames!r} selects no frames of the scenario's {total}")
    shard_index, shard_count = 0, 1
    if shard is not None and shard.strip().lower() == "auto":
        from gs_backend.cluster.scheduler import shard_from_environment

        shard = "{}/{}".format(*shard_from_environment(os.environ))
    if shard is not None:
        m = _SHARD.match(shard)
        if not m:
            raise InputError("--shard", None, f"expected I/N such as 0/4, got {shard!r}")
        shard_index, shard_count = int(m.group(1)), int(m.group(2))
        if shard_count < 1 or not 0 <= shard_index < shard_count:
            raise InputError("--shard", None,
                             f"need 0 <= I < N, got I={shard_index}, N={shard_count}")
    from gs_backend.dataset.render_run import FrameSelection

    return FrameSelection(start, stop, shard_index, shard_count)


def frames_nonempty(start: int, stop: int | None, total: int) -> bool:
    return len(range(total)[start:stop]) > 0
