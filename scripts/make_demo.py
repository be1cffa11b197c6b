#!/usr/bin/env python
"""Build the bundled demo and render it: ``python scripts/make_demo.py --out DIR``.

1. DIR/assets/*.ply and DIR/scenario.json: procedural stand-ins for a captured
   tissue splat and two instrument splats, and a laparoscopic camera and instrument
   trajectory. The instruments come as raw orbit captures (DIR/captures/*.ply: the
   instrument on a table, the room, floaters, halos) and are extracted automatically
   into their assets, as ``gs-backend extract`` does (paper section 2.2).
2. DIR/demo.blend: the same scene assembled in Blender through the add-on (the bpy
   module of ``.venv-blender``, headless): the splats imported as point proxies, the
   instruments and the camera keyed on every frame (``scripts/scenario_to_blend.py``).
3. DIR/dataset/: the labelled dataset, rendered from demo.blend by
   ``scripts/render_blend.py`` (which exports DIR/dataset/scenario.json and runs
   ``gs-backend render``). With ``--no-blender`` the backend renders DIR/scenario.json
   directly instead (for a backend-only install).
4. DIR/contact_sheet.png: every frame with its boxes, classes and mask outlines.
5. The paper's validation path (sections 2.5, 3.1): DIR/recording/ holds a tracked
   recording of the scene (EM tracker samples at 40 Hz with jitter and gaps, hand-eye
   calibrations) and its "real" video at 30 fps on its own clock, made from the true
   motion with a camera model (gs_backend.synthetic.demo_recording);
   ``gs-backend replay`` turns it into DIR/replayed_scenario.json, which is rendered
   into DIR/replayed/ and compared with the video by ``gs-backend evaluate``:
   DIR/realism/report.md (PSNR, SSIM as in the paper's Table 1) and overlays of the
   best and worst pairs.
6. DIR/preview.png: the first frame previewed through the sidecar (``gs-backend serve``
   on loopback, started and stopped here), twice (assets loaded, then cached), checked
   to be the very PNG the dataset holds.
7. dist/gs_dataset_studio-<version>.zip: the Blender extension (with the ``gs_contract``
   wheel it bundles), to install in Blender and open demo.blend with.

Open DIR/demo.blend in Blender (with the extension installed), move an instrument or
the camera, and render again from the sidebar's GS Dataset tab or with
``scripts/render_blend.py``.

Re-running is cheap: assets whose parameters have not changed are kept, demo.blend
too (with any edits you made to it; delete it to assemble it afresh), and the render
resumes, making only the frames that are missing. When the scene changed (other
demo parameters, or your edits to demo.blend), the dataset is rendered afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for the assets, scenario, dataset and contact sheet")
    parser.add_argument("--frames", type=int, default=24, metavar="N",
                        help="number of frames in the demo scenario (default 24)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to render (default auto: CUDA when available)")
    parser.add_argument("--width", type=int, default=640, help="image width (default 640)")
    parser.add_argument("--height", type=int, default=480, help="image height (default 480)")
    parser.add_argument("--tissue-count", type=int, default=150_000, metavar="N",
                        help="Gaussians in the tissue asset (default 150000)")
    parser.add_argument("--instrument-count", type=int, default=25_000, metavar="N",
                        help="Gaussians in each instrument asset (default 25000)")
    parser.add_argument("--blender-python", type=Path, default=DEFAULT_BLENDER_PYTHON,
                        metavar="PYTHON", help="a Python with the bpy module (default: the "
                                               "checkout's .venv-blender)")
    parser.add_argument("--extension-dir", type=Path, default=REPO / "dist", metavar="DIR",
                        help="where to build the Blender extension zip (default: dist/)")
    parser.add_argument("--no-blender", action="store_true",
                        help="skip Blender: render the demo scenario with the backend only")
    args = parser.parse_args(argv)
    for name in ("frames", "width", "height", "tissue_count", "instrument_count"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    from gs_backend.cli import main as backend_main
    from gs_backend.contact_sheet import make_contact_sheet
    from gs_backend.synthetic.demo_scenario import build_demo

    out: Path = args.out
    started = time.perf_counter()
    steps = 5 if args.no_blender else 6
    print(f"[1/{steps}] building the demo assets and scenario in {out}")
    inputs_before = _demo_inputs(out)
    scenario = build_demo(out, frames=args.frames, width=args.width, height=args.height,
                          tissue_count=args.tissue_count,
                          instrument_count=args.instrument_count)
    changed = _demo_inputs(out) != inputs_before
    _print_extractions(out)
    dataset = out / "dataset"
    # The demo's dataset always follows the demo as it is now (demo.blend with your
    # edits, or the scenario): the same scenario resumes, another one replaces it.
    if args.no_blender:
        print(f"[2/{steps}] rendering {args.frames} frames into {dataset}")
        code = backend_main(["render", str(scenario), "--out", str(dataset),
                             "--device", args.device, "--progress", "bar", "--overwrite"])
    else:
        code = _through_blender(args, scenario, dataset, changed, steps)
    if code != 0:
        again = "; run the same command again to resume" if code == 130 else ""
        print(f"make_demo: stopped with exit code {code}{again}", file=sys.stderr)
        return code

    sheet = out / "contact_sheet.png"
    print(f"[{steps - 1}/{steps}] drawing the contact sheet {sheet}")
    make_contact_sheet(dataset, sheet)

    print(f"[{steps - 1}/{steps}] replaying a tracked recording of the scene and measuring "
          "realism against its video")
    code, realism = _replay_and_evaluate(out, scenario, args.device)
    if code != 0:
        print(f"make_demo: the replay step stopped with exit code {code}", file=sys.stderr)
        return code

    print(f"[{steps}/{steps}] previewing a frame through the sidecar (gs-backend serve)")
    preview = _sidecar_preview(out, dataset)

    extension = _build_extension(args.extension_dir)

    elapsed = time.perf_counter() - started
    print(f"\ndone in {elapsed:.0f} s")
    print(f"  scenario:      {scenario}")
    if not args.no_blender:
        print(f"  Blender scene: {out / 'demo.blend'}")
    print(f"  assets:        {out / 'assets'}  (instruments extracted from {out / 'captures'})")
    print(f"  dataset:       {dataset}  (images/, labels/, masks/, annotations/, data.yaml)")
    print(f"  contact sheet: {sheet}")
    print(f"  replay:        {out / 'recording' / 'recording.json'} -> "
          f"{out / 'replayed_scenario.json'} -> {out / 'replayed'}")
    print(f"  realism:       {realism / 'report.md'}  (PSNR/SSIM per frame, overlays of the "
          "best and worst pairs)")
    print(f"  preview:       {preview}  (the sidecar's PNG of the first frame)")
    print(f"  extension:     {extension}  (Blender 4.2+: Edit > Preferences > Get Extensions >"
          " Install from Disk; bundles the gs_contract wheel)")
    return 0


def _replay_and_evaluate(out: Path, scenario: Path, device: str) -> tuple[int, Path]:
    """The paper's validation path on the demo (gs_backend.synthetic.demo_recording):
    write a tracked recording and its "real" video, replay the recording into a
    scenario, render it and compare the renders with the video. Returns the first
    non-zero exit code (or 0) and the report folder."""
    from gs_backend.cli import main as backend_main
    from gs_backend.synthetic.demo_recording import write_demo_recording, write_video

    recording = write_demo_recording(out, scenario)
    truth = recording.recording.parent / "truth"
    replayed_scenario = out / "replayed_scenario.json"
    replayed = out / "replayed"
    realism = out / "realism"
    common = ["--device", device, "--progress", "none", "--overwrite"]
    code = backend_main(["render", str(recording.truth_scenario), "--out", str(truth),
                         *common])
    if code == 0:
        write_video(sorted((truth / "images").rglob("*.png")), recording.video)
        code = backend_main(["replay", str(recording.recording), "--out",
                             str(replayed_scenario)])
    if code == 0:
        code = backend_main(["render", str(replayed_scenario), "--out", str(replayed),
                             *common])
    if code == 0:
        code = backend_main(["evaluate", "--rendered", str(replayed), "--real",
                             str(recording.video), "--masks", str(replayed), "--out",
                             str(realism)])
    if code == 0:
        print("      (the paper's Table 1, real endoscope video: PSNR 27.8 +- 1.8 dB, "
              "SSIM 0.912)")
    return code, realism


def _sidecar_preview(out: Path, dataset: Path) -> Path:
    """Start ``gs-backend serve`` on loopback, preview the dataset's first frame twice
    (cold, then warm: assets cached), check the PNG against the dataset's image, stop the
    sidecar by its pid. Returns the preview's path (docs/sidecar.md)."""
    import signal
    import urllib.request

    from gs_contract.sidecar import (
        RENDER_TIME_HEADER,
        ROUTE_PREVIEW,
        bearer_header,
        parse_listening_line,
        preview_request,
        read_token_file,
    )

    scenario = json.loads((dataset / "scenario.json").read_text(encoding="utf-8"))
    body = json.dumps(preview_request(scenario, 0, base_dir=dataset.resolve())).encode()
    token_file = out / "sidecar.token"
    log = open(out / "sidecar.log", "w", encoding="utf-8")  # its access log
    process = subprocess.Popen(
        [sys.executable, "-m", "gs_backend", "serve", "--port", "0", "--token-file",
         str(token_file)], stdout=subprocess.PIPE, stderr=log, text=True,
        start_new_session=True)
    try:
        listening = None
        for line in process.stdout:  # the sidecar's one line when it is ready
            listening = parse_listening_line(line)
            if listening is not None:
                break
        if listening is None:
            raise RuntimeError("gs-backend serve ended before it was listening; see "
                               f"{out / 'sidecar.log'}")
        headers = {"Content-Type": "application/json",
                   **bearer_header(read_token_file(listening.token_file))}
        seconds = []
        for _ in range(2):
            request = urllib.request.Request(listening.url + ROUTE_PREVIEW, data=body,
                                             headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=300) as response:
                png = response.read()
                seconds.append(float(response.headers[RENDER_TIME_HEADER]))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    target = out / "preview.png"
    target.write_bytes(png)
    first = scenario["frames"][0]["name"]
    [image] = list((dataset / "images").rglob(f"{first}.*"))
    same = "identical to" if image.read_bytes() == png else "DIFFERENT from"
    print(f"      {first}: first preview {seconds[0]:.2f} s (assets loaded), then "
          f"{seconds[1]:.2f} s (cached); the PNG is {same} the dataset's image")
    return target


def _print_extractions(out: Path) -> None:
    """One line per instrument extracted from its raw capture (the paper's whole path)."""
    import json

    from gs_backend.synthetic.demo_captures import CAPTURE_DIR, report_path
    from gs_backend.synthetic.demo_scenario import INSTRUMENT_ASSETS

    for name in INSTRUMENT_ASSETS:
        capture = out / CAPTURE_DIR / f"{name}.ply"
        report = json.loads(report_path(capture).read_text(encoding="utf-8"))
        truth = report["ground_truth"]
        stages = ", ".join(f"{s['name']} -{s['removed']:,}" for s in report["stages"]
                           if s["removed"])
        print(f"      extracted {name} from its raw capture: kept {report['kept']:,} of "
              f"{report['rows']:,} Gaussians ({stages}); against the known instrument: "
              f"precision {truth['precision']:.4f}, recall {truth['recall']:.4f}")


def _build_extension(out_dir: Path) -> Path:
    """The Blender extension zip (and the gs_contract wheel it bundles) in ``out_dir``."""
    scripts = str(Path(__file__).resolve().parent)
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import build_extension

    return build_extension.build(out_dir)


def _through_blender(args: argparse.Namespace, scenario: Path, dataset: Path,
                     demo_changed: bool, steps: int) -> int:
    """Assemble demo.blend through the add-on (unless it exists and the demo did not
    change: then it is kept, with any edits made to it), and render it with
    render_blend.py."""
    blender_python = args.blender_python
    if not blender_python.is_file():
        print(f"make_demo: {blender_python}: no Python with the bpy module (run `make setup`, "
              "or pass --blender-python, or --no-blender)", file=sys.stderr)
        return 2
    blend = scenario.parent / "demo.blend"
    if blend.is_file() and not demo_changed:
        print(f"[2/{steps}] keeping {blend} as it is (delete it to assemble it afresh)")
    else:
        print(f"[2/{steps}] assembling {blend} in Blender through the add-on")
        code = subprocess.call([str(blender_python),
                                str(REPO / "scripts" / "scenario_to_blend.py"),
                                str(scenario), "--out", str(blend)])
        if code != 0:
            return code
    print(f"[3/{steps}] rendering {blend.name} into {dataset} (scripts/render_blend.py)")
    # The backend is this Python (it has gs_backend), whichever venv runs the demo.
    return subprocess.call([str(blender_python), str(REPO / "scripts" / "render_blend.py"),
                            str(blend), "--out", str(dataset), "--backend", sys.executable,
                            "--device", args.device, "--overwrite"])


def _demo_inputs(out: Path) -> tuple[str, str] | None:
    """The asset stamp and scenario text of an earlier build in ``out``, if complete."""
    from gs_backend.synthetic.demo_scenario import ASSET_STAMP, SCENARIO_NAME

    stamp, scenario = out / ASSET_STAMP, out / SCENARIO_NAME
    if not (stamp.is_file() and scenario.is_file()):
        return None
    return stamp.read_text(encoding="utf-8"), scenario.read_text(encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
