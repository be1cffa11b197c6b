"""``gs-backend replay RECORDING.json --out SCENARIO.json [--json]`` (DESIGN contract 8).

Reads and replays the recording (:func:`gs_contract.recording.replay_file`), then writes
the scenario atomically with asset paths relative to its own folder. Any refusal is an
:class:`~gs_contract.errors.InputError` (exit 2, one line) raised before anything is
written. ``--json`` prints a report on stdout; without it, one summary line goes to
stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gs_contract.errors import InputError
from gs_contract.recording import Replay, read_recording, replay_recording, write_replay_scenario
from gs_contract.recording.model import Recording


def add_replay_parser(sub: argparse._SubParsersAction) -> None:
    """The ``replay`` subcommand's arguments."""
    replay = sub.add_parser(
        "replay", help="turn a tracked recording into a scenario (docs/replay.md)",
        description="Replay a gs-recording (tracker samples, image timestamps, "
                    "calibrations) into a gs-scenario with one frame per image. "
                    "See docs/replay.md.")
    replay.add_argument("recording", type=Path, metavar="RECORDING.json",
                        help="the gs-recording v1 file")
    replay.add_argument("--out", type=Path, required=True, metavar="SCENARIO.json",
                        help="the scenario to write (asset paths relative to its folder)")
    replay.add_argument("--json", action="store_true",
                        help="print a JSON report on stdout (frames, sensors, time span, "
                             "largest interpolation gap, clock offset)")


def run_replay_command(args: argparse.Namespace) -> int:
    """Run ``gs-backend replay`` for parsed ``args``; return the exit code (0).

    Raises:
        InputError: a bad recording or an output that is an input or a folder; nothing
            is written then.
    """
    recording = read_recording(args.recording)
    out = _check_out(args.out, recording)
    replay = replay_recording(recording)
    write_replay_scenario(replay, out)
    summary = report(recording, replay, out)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"gs-backend replay: {summary['frames']} frames from "
              f"{len(summary['sensors'])} sensors -> {out}", file=sys.stderr)
    return 0


def report(recording: Recording, replay: Replay, out: Path) -> dict[str, Any]:
    """The ``--json`` report (docs/replay.md lists the fields)."""
    times = replay.image_times_s
    return {
        "recording": str(recording.path),
        "out": str(out),
        "frames": len(replay.image_names),
        "first_frame": replay.image_names[0],
        "last_frame": replay.image_names[-1],
        "image_time_span_s": [float(times.min()), float(times.max())],
        "tracker_time_span_s": [float(times.min()) + recording.clock_offset_s,
                                float(times.max()) + recording.clock_offset_s],
        "clock_offset_s": recording.clock_offset_s,
        "max_gap_s": recording.max_gap_s,
        "max_interpolation_gap_s": replay.stats.max_gap_used_s,
        "sensors": replay.stats.sensors,
    }


def _check_out(out: Path, recording: Recording) -> Path:
    """The absolute output path; refuse a folder or any input file."""
    out = out.absolute()
    if out.is_dir():
        raise InputError(out, "--out", "is a folder; give a file name")
    inputs = {recording.path: "the recording", recording.base.path: "the base scenario",
              recording.tracking_file: "the tracker file",
              recording.images_file: "the image table"}
    for path, what in inputs.items():
        if out.resolve() == path.resolve():
            raise InputError(out, "--out", f"is {what}; inputs are never overwritten")
    return out
