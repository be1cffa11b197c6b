"""A stand-in for ``gs-backend render`` in the Blender-side tests.

Usage, as the backend command: ``python fake_backend.py [--mode M] [--delay S] render
SCENARIO --out DIR --progress jsonl --device D [--overwrite] [--frames A:B]``.

It prints the backend's jsonl events (through ``gs_contract.protocol``, as the backend
does) and writes a tiny dataset: one PNG per frame of the scenario's image size,
``manifest.json`` with the scenario's fingerprint, and the folder's fingerprint file, as
the real backend claims a folder. Modes:

- ``ok``: render every frame (``--delay`` seconds each), exit 0;
- ``fail``: one error event plus a stderr line, exit 2 (bad input);
- ``crash``: a traceback on stderr and no error event, exit 1;
- ``wait``: one frame, then wait for Ctrl-C (SIGINT) and exit 130 like the backend;
- ``stubborn``: like ``wait`` but ignores SIGINT (only terminate/kill stop it);
- ``garbled``: events with fields of the wrong types and unknown events first, then ``ok``;
- ``nodata``: the events of ``ok`` and exit 0, but no dataset written;
- ``leak``: ``ok``, but it leaves a child that keeps stdout and stderr open;
- ``wrapper``: like ``conda run``: runs ``wait`` as a child sharing its stdout, and on
  SIGINT exits at once without passing it on (the child is left running).

It records its own argv in ``DIR/fake_backend_argv.json`` and the pid of every process
it starts or is in ``DIR/fake_backend_pids.txt`` (one per line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # gs_contract
from gs_contract.dataset import DatasetLayout
from gs_contract.protocol import (
    DoneEvent,
    ErrorEvent,
    Event,
    FrameEvent,
    LogEvent,
    StartEvent,
    encode_event,
)
from gs_contract.scenario import load_scenario

MODES = ("ok", "fail", "crash", "wait", "stubborn", "garbled", "nodata", "leak", "wrapper")
LONG_WAIT_S = 300.0  # "forever", but a failed test never leaves a process for good
GARBLED_LINES = (
    '{"event": "start", "total": "four", "skipped": 0}',
    '{"event": "frame", "done": null, "total": 4, "name": "frame_0001"}',
    '{"event": "frame", "done": 1, "total": 4, "name": ["frame_0001"]}',
    '{"event": "log", "level": 3, "message": {"text": "hi"}}',
    '{"event": "done", "frames_done": "all"}',
    '{"event": "error"}',
    '{"event": "mystery", "value": 1}',
    '{"event": 7}',
    '[1, 2, 3]',
    '"just a string"',
    '{"event": "frame", "done": true, "total": -1, "name": "x"}',
    "plain text from a wrapper",
)


def emit(event: Event) -> None:
    sys.stdout.write(encode_event(event) + "\n")
    sys.stdout.flush()


def record_pid(out: Path) -> None:
    with open(out / "fake_backend_pids.txt", "a", encoding="utf-8") as handle:
        handle.write(f"{os.getpid()}\n")


def write_png(path: Path, width: int, height: int, rgb: tuple[int, int, int]) -> None:
    """A solid-colour 8-bit RGB PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw)
                     + chunk(b"IEND", b""))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake_backend")
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument("--delay", type=float, default=0.0)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render")
    render.add_argument("scenario", type=Path)
    render.add_argument("--out", type=Path, required=True)
    render.add_argument("--progress", default="bar")
    render.add_argument("--device", default="auto")
    render.add_argument("--overwrite", action="store_true")
    render.add_argument("--frames", default=None)
    render.add_argument("--shard", default=None)
    return parser.parse_args(argv)


def wait_for_ctrl_c(out: Path, frame_name: str, total: int) -> int:
    emit(FrameEvent(done=1, total=total, name=frame_name, instances=0, seconds=0.0))
    try:
        time.sleep(LONG_WAIT_S)
    except KeyboardInterrupt:
        emit(ErrorEvent("interrupted; finished frames are kept, run the same command to "
                        "resume"))
        print("gs-backend: interrupted", file=sys.stderr)
        (out / "fake_backend_interrupted").write_text("yes")
        return 130
    return 1


def main(argv: list[str]) -> int:
    # Like gs_backend.interrupt.install: SIGINT means "stop" even when we were started
    # with it ignored (a shell starts background jobs so, and children inherit that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record_pid(args.out)
    if args.mode == "wrapper":
        child = subprocess.Popen([sys.executable, __file__, "--mode", "wait",
                                  *argv[argv.index("render"):]])
        try:
            return child.wait()
        except KeyboardInterrupt:  # a careless wrapper: its child is not told
            return 130
    (args.out / "fake_backend_argv.json").write_text(json.dumps(argv))
    if args.mode == "fail":
        message = f"{args.scenario}: frames[0].camera.K: focal lengths must be positive"
        emit(ErrorEvent(message))
        print(f"gs-backend: error: {message}", file=sys.stderr)
        return 2
    if args.mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: boom", file=sys.stderr)
        return 1
    scenario = json.loads(args.scenario.read_text(encoding="utf-8"))
    fingerprint = load_scenario(args.scenario).fingerprint()
    layout = DatasetLayout(args.out)
    layout.state_dir.mkdir(exist_ok=True)
    layout.fingerprint_file.write_text(fingerprint + "\n")
    frames = scenario["frames"]
    total = len(frames)
    if args.mode == "garbled":
        for line in GARBLED_LINES:
            print(line, flush=True)
    emit(StartEvent(total=total, skipped=0, device=args.device, out=str(args.out)))
    emit(LogEvent("warning", "fake warning: nothing is really rendered"))
    t0 = time.perf_counter()
    if args.mode in ("wait", "stubborn"):
        if args.mode == "stubborn":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return wait_for_ctrl_c(args.out, frames[0]["name"], total)
    records = []
    instances = 0
    for i, frame in enumerate(frames, start=1):
        time.sleep(args.delay)
        cam = frame["camera"]
        image = f"images/train/{frame['name']}.png"
        if args.mode != "nodata":
            write_png(args.out / image, cam["width"], cam["height"], (200, 40 * (i % 6), 30))
        visible = sum(1 for name in frame["poses"]
                      if scenario["objects"][name]["role"] == "instrument")
        instances += visible
        records.append({"name": frame["name"], "index": i - 1, "split": "train",
                        "image": image})
        emit(FrameEvent(done=i, total=total, name=frame["name"], split="train",
                        instances=visible, seconds=round(time.perf_counter() - t0, 3)))
    manifest = {"format": "gs-dataset-manifest", "version": 1, "scenario_sha256": fingerprint,
                "frames": records, "frames_total": total, "frames_done": total,
                "labelled_instances": instances}
    if args.mode != "nodata":
        layout.manifest.write_text(json.dumps(manifest))
    if args.mode == "leak":  # a child that outlives us and keeps our stdout/stderr open
        child = subprocess.Popen([sys.executable, "-c",
                                  f"import time; time.sleep({LONG_WAIT_S})"])
        with open(args.out / "fake_backend_pids.txt", "a", encoding="utf-8") as handle:
            handle.write(f"{child.pid}\n")
    emit(DoneEvent(out=str(args.out), frames_total=total, frames_selected=total,
                   frames_rendered=total, frames_skipped=0, frames_done=total,
                   labelled_instances=instances, seconds=round(time.perf_counter() - t0, 3)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
