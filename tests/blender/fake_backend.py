"""A stand-in for ``gs-backend render`` in the Blender-side tests (stdlib only).

Usage, as the backend command: ``python fake_backend.py [--mode M] [--delay S] render
SCENARIO --out DIR --progress jsonl --device D [--overwrite] [--frames A:B]``.

It prints the backend's jsonl events and writes a tiny dataset (one PNG per frame of the
scenario's image size, ``manifest.json``). Modes:

- ``ok``: render every frame (``--delay`` seconds each), exit 0;
- ``fail``: one error event plus a stderr line, exit 2 (bad input);
- ``crash``: a traceback on stderr and no error event, exit 1;
- ``wait``: one frame, then wait for Ctrl-C (SIGINT) and exit 130 like the backend;
- ``stubborn``: like ``wait`` but ignores SIGINT (only terminate/kill stop it).

It records its own argv in ``DIR/fake_backend_argv.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import struct
import sys
import time
import zlib
from pathlib import Path


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


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
    parser.add_argument("--mode", default="ok",
                        choices=("ok", "fail", "crash", "wait", "stubborn"))
    parser.add_argument("--delay", type=float, default=0.0)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render")
    render.add_argument("scenario", type=Path)
    render.add_argument("--out", type=Path, required=True)
    render.add_argument("--progress", default="bar")
    render.add_argument("--device", default="auto")
    render.add_argument("--overwrite", action="store_true")
    render.add_argument("--frames", default=None)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fake_backend_argv.json").write_text(json.dumps(argv))
    if args.mode == "fail":
        message = f"{args.scenario}: frames[0].camera.K: focal lengths must be positive"
        emit("error", message=message)
        print(f"gs-backend: error: {message}", file=sys.stderr)
        return 2
    if args.mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: boom", file=sys.stderr)
        return 1
    scenario = json.loads(args.scenario.read_text(encoding="utf-8"))
    frames = scenario["frames"]
    total = len(frames)
    emit("start", total=total, skipped=0, device=args.device, out=str(args.out))
    emit("log", level="warning", message="fake warning: nothing is really rendered")
    t0 = time.perf_counter()
    if args.mode in ("wait", "stubborn"):
        if args.mode == "stubborn":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        emit("frame", done=1, total=total, name=frames[0]["name"], instances=0, seconds=0.0)
        try:
            while True:
                time.sleep(0.05)
        except KeyboardInterrupt:
            emit("error", message="interrupted; finished frames are kept, run the same "
                                  "command to resume")
            print("gs-backend: interrupted", file=sys.stderr)
            return 130
    records = []
    instances = 0
    for i, frame in enumerate(frames, start=1):
        time.sleep(args.delay)
        cam = frame["camera"]
        image = f"images/train/{frame['name']}.png"
        write_png(args.out / image, cam["width"], cam["height"], (200, 40 * (i % 6), 30))
        visible = sum(1 for name in frame["poses"]
                      if scenario["objects"][name]["role"] == "instrument")
        instances += visible
        records.append({"name": frame["name"], "index": i - 1, "split": "train",
                        "image": image})
        emit("frame", done=i, total=total, name=frame["name"], split="train",
             instances=visible, seconds=round(time.perf_counter() - t0, 3))
    manifest = {"format": "gs-dataset-manifest", "version": 1, "frames": records,
                "frames_total": total, "frames_done": total, "labelled_instances": instances}
    (args.out / "manifest.json").write_text(json.dumps(manifest))
    emit("done", out=str(args.out), frames_total=total, frames_selected=total,
         frames_rendered=total, frames_skipped=0, frames_done=total,
         labelled_instances=instances, seconds=round(time.perf_counter() - t0, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
