"""Render the labelled dataset of one or more .blend files, headless (DESIGN contract 6).

With the bpy module (Blender as a Python module, e.g. the checkout's ``.venv-blender``)::

    python scripts/render_blend.py scene.blend --out DIR [--backend CMD] [--device auto]
                                   [--frames ALL|KEYFRAMES] [--overwrite]
                                   [--shard I/N|auto]
    python scripts/render_blend.py a.blend b.blend --out DIR     # DIR/a/, DIR/b/

With Blender itself (the .blend named before ``--python`` is already open)::

    blender -b scene.blend --python scripts/render_blend.py -- --out DIR [...]

For one .blend the script writes ``DIR/scenario.json`` and renders the dataset into
``DIR``; for several, each goes to ``DIR/<blend stem>/``. Progress goes to stderr; stdout
gets one line per .blend (``ok`` or ``error`` and why). The exit code
(``gs_contract.protocol.ExitCode``, see ``docs/protocol.md``) is 0 when every file
rendered, else the backend's code for a single file (2 bad input, 130 interrupted), or 1
for a batch with failures. Ctrl-C and SIGTERM stop the backend at once (its whole process
group, which finishes the frames in flight) and exit 130; rendering again resumes.

The GS Dataset Studio extension need not be installed: without it the script
registers the add-on from the ``blender_addon`` folder next to this script.
``--backend`` defaults to the add-on preference, else the checkout's
``.venv/bin/gs-backend``, else ``gs-backend`` on PATH.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import ModuleType

import bpy

sys.path.insert(0, str(Path(__file__).resolve().parent))  # blender --python does not
from addon_loader import (
    REPO,
    addon_module,
    addon_package,
    log,
    release_addon,
    script_argv,
)

from gs_contract.protocol import Event, ExitCode, FrameEvent, LogEvent, StartEvent

# Seconds the backend gets to finish its frames in flight after Ctrl-C or SIGTERM, before
# it is terminated (a batch system's SIGTERM is followed by SIGKILL soon after).
STOP_GRACE_S = 10.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="render_blend.py",
        description="Export each .blend's GS Dataset scenario and render it with gs-backend.")
    parser.add_argument("blends", nargs="*", type=Path, metavar="BLEND",
                        help=".blend files (with `blender -b FILE`, default: the open file)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output folder (several .blend files: DIR/<blend stem>/)")
    parser.add_argument("--backend", default=None, metavar="CMD",
                        help="gs-backend executable, a Python that has gs_backend, or a "
                             "command line (default: the add-on preference, else the "
                             "checkout's .venv/bin/gs-backend, else gs-backend on PATH)")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (default: the add-on preference)")
    parser.add_argument("--frames", choices=("ALL", "KEYFRAMES"), type=str.upper,
                        default=None, help="all frames or keyframes only (default: the "
                                           "scene's setting)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset of a different scenario in the folder")
    parser.add_argument("--shard", default=None, metavar="I/N|auto",
                        help="render every N-th frame starting at I into the folder, or "
                             "'auto': this Slurm/SGE array task's share (docs/cluster.md)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# the add-on


def default_backend(package: ModuleType) -> str:
    """The add-on preference when set, else the checkout's backend, else PATH."""
    jobs = addon_module(package, "blender.render_job")
    command, _ = jobs.render_settings(bpy.context)
    if command and command != "gs-backend":
        return command
    local = REPO / ".venv" / ("Scripts/gs-backend.exe" if sys.platform == "win32"
                              else "bin/gs-backend")
    return str(local) if local.is_file() else (command or "gs-backend")


# ---------------------------------------------------------------------------
# rendering


def render_open_blend(package: ModuleType, out_dir: Path, args: argparse.Namespace,
                      backend: str) -> tuple[int, str]:
    """Export the open .blend into ``out_dir/scenario.json`` and render it (blocking),
    through the add-on's render job (the same path as the Render Dataset button).

    Returns (exit code, one-line message).
    """
    jobs = addon_module(package, "blender.render_job")
    builder = addon_module(package, "core.scenario_builder")
    process_mod = addon_module(package, "core.backend_process")
    from gs_contract.camera import CameraConversionError  # importable once the add-on is

    context = bpy.context
    out_dir = out_dir.resolve()
    try:
        job = jobs.start_render_job(context, out_dir=out_dir, overwrite=args.overwrite,
                                    backend_command=backend, device=args.device,
                                    frames=args.frames, shard=args.shard)
    except (builder.ScenarioExportError, CameraConversionError) as exc:
        return ExitCode.BAD_INPUT, f"export failed: {exc}"
    except OSError as exc:
        return ExitCode.BAD_INPUT, f"cannot write {out_dir / 'scenario.json'}: {exc}"
    except process_mod.BackendError as exc:
        return ExitCode.INTERNAL, str(exc)
    log(f"rendering into {out_dir} with {job.process.argv[0]}")
    _FRAME_TIMES.clear()
    jobs.run_render_job_blocking(context, job, on_events=_log_events,
                                 interrupt_grace=STOP_GRACE_S)
    state = job.process.state
    if len(_FRAME_TIMES) >= 3:
        rate = (len(_FRAME_TIMES) - 1) / max(_FRAME_TIMES[-1] - _FRAME_TIMES[0], 1e-9)
        log(f"  {rate:.1f} labelled frames/s from the first frame to the last "
            f"({len(_FRAME_TIMES)} frames; loading and the first frame excluded)")
    if state.succeeded:
        text = state.summary.text() if state.summary else f"{state.done} frames"
        return ExitCode.OK, f"{text} -> {out_dir}"
    if state.interrupted:
        return ExitCode.INTERRUPTED, "interrupted; run the same command again to resume"
    code = state.returncode if state.returncode not in (None, ExitCode.OK) \
        else ExitCode.INTERNAL
    return code, f"render failed: {state.error}"


_FRAME_TIMES: list[float] = []
"""When each frame event of the current render arrived (for the frame rate)."""


def _log_events(events: list[Event]) -> None:
    """Stream the backend's progress to stderr; note when frames arrive."""
    for event in events:
        if isinstance(event, FrameEvent):
            _FRAME_TIMES.append(time.perf_counter())
        if isinstance(event, StartEvent) and event.skipped:
            log(f"  resuming: {event.skipped} of {event.total} frames done")
        elif isinstance(event, FrameEvent):
            log(f"  [{event.done}/{event.total}] {event.name}: {event.instances} labelled "
                f"instance{'' if event.instances == 1 else 's'}")
        elif isinstance(event, LogEvent):
            log(f"  {event.level}: {event.message}")


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the run like Ctrl-C: the backend is told at once, not orphaned."""
    raise KeyboardInterrupt


def open_blend(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no such .blend file: {path}")
    bpy.ops.wm.open_mainfile(filepath=str(path.resolve()), load_ui=False)


def _shared_output_folder(blends: list[Path]) -> list[Path]:
    """The first set of different .blend files with the same name (they would share
    DIR/<stem>/), or an empty list."""
    by_stem: dict[str, list[Path]] = {}
    for blend in blends:
        paths = by_stem.setdefault(blend.stem, [])
        if all(blend.resolve() != p.resolve() for p in paths):
            paths.append(blend)
    return next((paths for paths in by_stem.values() if len(paths) > 1), [])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(script_argv() if argv is None else argv)
    blends: list[Path | None] = list(args.blends)
    if not blends:
        if not bpy.data.filepath:
            print("error: name a .blend file (or open one with `blender -b FILE`)",
                  file=sys.stderr)
            return ExitCode.BAD_INPUT
        blends = [None]  # the open file
    batch = len(blends) > 1
    if batch and (clash := _shared_output_folder(blends)):
        print(f"error: {' and '.join(map(str, clash))} would render into one folder "
              f"{args.out / clash[0].stem}: render them in separate runs with different "
              "--out folders", file=sys.stderr)
        return ExitCode.BAD_INPUT
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    package = addon_package()
    try:
        return render_blends(package, blends, args, batch)
    finally:
        release_addon()


def render_blends(package: ModuleType, blends: list[Path | None], args: argparse.Namespace,
                  batch: bool) -> int:
    """Render each .blend (None: the open file); print one line each; the exit code."""
    backend = args.backend or default_backend(package)
    failed = 0
    code = 0
    for blend in blends:
        label = str(blend) if blend is not None else bpy.data.filepath
        out_dir = args.out / blend.stem if batch and blend is not None else args.out
        try:
            if blend is not None:
                open_blend(blend)
            code, message = render_open_blend(package, out_dir, args, backend)
        except (FileNotFoundError, RuntimeError) as exc:  # open_mainfile raises RuntimeError
            code, message = ExitCode.BAD_INPUT, f"cannot open: {exc}"
        except KeyboardInterrupt:  # while exporting or opening: no backend runs yet
            code, message = ExitCode.INTERRUPTED, "interrupted"
        print(f"{'ok' if code == 0 else 'error'} {label}: {message}", flush=True)
        if code != 0:
            failed += 1
        if code == ExitCode.INTERRUPTED:
            return ExitCode.INTERRUPTED
    if not failed:
        return ExitCode.OK
    return ExitCode.INTERNAL if batch else code


if __name__ == "__main__":
    sys.exit(main())
