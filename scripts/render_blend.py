"""Render the labelled dataset of one or more .blend files, headless (DESIGN contract 6).

With the bpy module (Blender as a Python module, e.g. the checkout's ``.venv-blender``)::

    python scripts/render_blend.py scene.blend --out DIR [--backend CMD] [--device auto]
                                   [--frames ALL|KEYFRAMES] [--overwrite]
    python scripts/render_blend.py a.blend b.blend --out DIR     # DIR/a/, DIR/b/

With Blender itself (the .blend named before ``--python`` is already open)::

    blender -b scene.blend --python scripts/render_blend.py -- --out DIR [...]

For one .blend the script writes ``DIR/scenario.json`` and renders the dataset into
``DIR``; for several, each goes to ``DIR/<blend stem>/``. Progress goes to stderr; stdout
gets one line per .blend (``ok`` or ``error`` and why). The exit code is 0 when every
file rendered, else the backend's code for a single file (2 bad input, 130
interrupted), or 1 for a batch with failures.

The GS Dataset Studio extension need not be installed: without it the script
registers the add-on from the ``blender_addon`` folder next to this script.
``--backend`` defaults to the add-on preference, else the checkout's
``.venv/bin/gs-backend``, else ``gs-backend`` on PATH.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


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
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------
# the add-on


def default_backend(package: ModuleType) -> str:
    """The add-on preference when set, else the checkout's backend, else PATH."""
    render_ops = addon_module(package, "blender.operators_render")
    command, _ = render_ops.render_settings(bpy.context)
    if command and command != "gs-backend":
        return command
    local = REPO / ".venv" / ("Scripts/gs-backend.exe" if sys.platform == "win32"
                              else "bin/gs-backend")
    return str(local) if local.is_file() else (command or "gs-backend")


# ---------------------------------------------------------------------------
# rendering


def render_open_blend(package: ModuleType, out_dir: Path, args: argparse.Namespace,
                      backend: str) -> tuple[int, str]:
    """Export the open .blend into ``out_dir/scenario.json`` and render it (blocking).

    Returns (exit code, one-line message).
    """
    export = addon_module(package, "blender.operators_export")
    builder = addon_module(package, "core.scenario_builder")
    process_mod = addon_module(package, "core.backend_process")
    render_ops = addon_module(package, "blender.operators_render")
    from gs_contract.camera import CameraConversionError  # importable once the add-on is

    context = bpy.context
    out_dir = out_dir.resolve()
    scenario_path = out_dir / "scenario.json"
    try:
        scenario = export.build_scene_scenario(context, scenario_path, args.frames)
        render_ops.check_output_folder(out_dir, scenario, overwrite=args.overwrite)
        builder.write_scenario(scenario_path, scenario)
    except (builder.ScenarioExportError, CameraConversionError) as exc:
        return EXIT_BAD_INPUT, f"export failed: {exc}"
    except OSError as exc:
        return EXIT_BAD_INPUT, f"cannot write {scenario_path}: {exc}"
    _, pref_device = render_ops.render_settings(context)
    device = args.device or pref_device
    try:
        job = process_mod.BackendJob.start(backend, scenario_path, out_dir, device=device,
                                           overwrite=args.overwrite)
    except process_mod.BackendError as exc:
        return EXIT_FAILED, str(exc)
    log(f"rendering {len(scenario['frames'])} frames into {out_dir} with {job.argv[0]}")
    try:
        state = _follow(job)
    except KeyboardInterrupt:
        log("interrupted: stopping the backend (finished frames are kept)")
        state = job.cancel()
        return EXIT_INTERRUPTED, "interrupted; run the same command again to resume"
    if state.succeeded:
        text = state.summary.text() if state.summary else f"{state.done} frames"
        return 0, f"{text} -> {out_dir}"
    if state.interrupted:
        return EXIT_INTERRUPTED, "interrupted; run the same command again to resume"
    return state.returncode or EXIT_FAILED, f"render failed: {state.error}"


def _follow(job: Any) -> Any:
    """Poll the backend until it exits, streaming its progress to stderr."""
    import time

    while True:
        state = job.poll()
        for event in state.new_events:
            kind = event.get("event")
            if kind == "start" and event.get("skipped"):
                log(f"  resuming: {event['skipped']} of {event.get('total')} frames done")
            elif kind == "frame":
                count = event.get("instances", 0)
                log(f"  [{event.get('done')}/{event.get('total')}] {event.get('name')}: "
                    f"{count} labelled instance{'' if count == 1 else 's'}")
            elif kind == "log":
                log(f"  {event.get('level', 'info')}: {event.get('message', '')}")
        if state.finished:
            return state
        time.sleep(0.05)


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
            return EXIT_BAD_INPUT
        blends = [None]  # the open file
    batch = len(blends) > 1
    if batch and (clash := _shared_output_folder(blends)):
        print(f"error: {' and '.join(map(str, clash))} would render into one folder "
              f"{args.out / clash[0].stem}: render them in separate runs with different "
              "--out folders", file=sys.stderr)
        return EXIT_BAD_INPUT
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
            code, message = EXIT_BAD_INPUT, f"cannot open: {exc}"
        print(f"{'ok' if code == 0 else 'error'} {label}: {message}", flush=True)
        if code != 0:
            failed += 1
        if code == EXIT_INTERRUPTED:
            return EXIT_INTERRUPTED
    if not failed:
        return 0
    return EXIT_FAILED if batch else code


if __name__ == "__main__":
    sys.exit(main())
