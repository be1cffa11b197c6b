"""Progress reporting for ``gs-backend render``: a tqdm bar, JSON lines, or quiet.

``jsonl`` prints one JSON object per line on stdout, flushed at once, for the
Blender add-on (or any other program) to read::

    {"event": "start", "total": 40, "skipped": 0, "device": "cpu", ...}
    {"event": "frame", "done": 3, "total": 40, "name": "frame_0003", "seconds": 0.41, ...}
    {"event": "log", "level": "warning", "message": "..."}
    {"event": "done", "frames": 40, "rendered": 40, "labelled_instances": 71, ...}
    {"event": "error", "message": "..."}

Human-readable messages go to stderr in the other modes.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Literal, Protocol, TextIO

ProgressMode = Literal["bar", "jsonl", "none"]


class Progress(Protocol):
    def start(self, total: int, skipped: int, **info: Any) -> None: ...
    def frame(self, done: int, total: int, name: str, **info: Any) -> None: ...
    def log(self, level: str, message: str) -> None: ...
    def finish(self, **summary: Any) -> None: ...
    def error(self, message: str) -> None: ...


class JsonlProgress:
    """Machine-readable events on ``stream`` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _emit(self, event: str, **fields: Any) -> None:
        self.stream.write(json.dumps({"event": event, **fields}) + "\n")
        self.stream.flush()

    def start(self, total: int, skipped: int, **info: Any) -> None:
        self._emit("start", total=total, skipped=skipped, **info)

    def frame(self, done: int, total: int, name: str, **info: Any) -> None:
        self._emit("frame", done=done, total=total, name=name, **info)

    def log(self, level: str, message: str) -> None:
        self._emit("log", level=level, message=message)

    def finish(self, **summary: Any) -> None:
        self._emit("done", **summary)

    def error(self, message: str) -> None:
        self._emit("error", message=message)


class TextProgress:
    """A tqdm bar on stderr when ``bar`` and stderr is a terminal; otherwise plain lines."""

    def __init__(self, bar: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.use_bar = bar and self.stream.isatty()
        self.quiet = not bar
        self._bar: Any = None

    def start(self, total: int, skipped: int, **info: Any) -> None:
        if skipped:
            self.log("info", f"resuming: {skipped} of {total} frames already done")
        if self.use_bar:
            from tqdm import tqdm

            # A terminal that reports no size (a bare pseudo-terminal, 0 x 0) would get
            # no bar at all from tqdm: assume 80 columns and 20 lines where unknown.
            columns, lines = _terminal_size(self.stream)
            sized = columns > 0 and lines > 0
            self._bar = tqdm(total=total, initial=skipped, unit="frame", file=self.stream,
                             dynamic_ncols=sized, ncols=None if sized else columns or 80,
                             nrows=None if sized else lines or 20, desc="render")

    def frame(self, done: int, total: int, name: str, **info: Any) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
        elif not self.quiet:
            self.stream.write(f"[{done}/{total}] {name}\n")
            self.stream.flush()

    def log(self, level: str, message: str) -> None:
        if self.quiet and level == "info":
            return
        text = message if level == "info" else f"{level}: {message}"
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self, **summary: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if not self.quiet:
            self.stream.write(
                f"done: {summary.get('frames_done')}/{summary.get('frames_total')} frames, "
                f"{summary.get('labelled_instances')} labelled instances, "
                f"{summary.get('seconds', 0):.1f} s -> {summary.get('out')}\n")
            self.stream.flush()

    def error(self, message: str) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self.stream.write(f"error: {message}\n")
        self.stream.flush()


def _terminal_size(stream: TextIO) -> tuple[int, int]:
    """(columns, lines) of the terminal behind ``stream``; (0, 0) when unknown."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return 0, 0
    return size.columns, size.lines


def make_progress(mode: ProgressMode) -> Progress:
    if mode == "jsonl":
        return JsonlProgress()
    return TextProgress(bar=(mode == "bar"))
