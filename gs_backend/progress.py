"""Progress reporting for ``gs-backend render``: JSON lines, a tqdm bar, or quiet.

A run reports through :meth:`Progress.emit` with the typed events of
:mod:`gs_contract.protocol` (``StartEvent``, ``FrameEvent``, ``LogEvent``, ``DoneEvent``,
``ErrorEvent``; their fields are listed in ``docs/protocol.md``).

- ``jsonl``: each event as one JSON line on stdout (:func:`gs_contract.protocol.encode_event`),
  flushed at once, for the Blender add-on or any other program;
- ``bar``: a tqdm bar on stderr when it is a terminal, else one plain line per frame;
- ``none``: warnings and errors only.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal, Protocol, TextIO

from gs_contract.protocol import (
    DoneEvent,
    ErrorEvent,
    Event,
    FrameEvent,
    LogEvent,
    StartEvent,
    encode_event,
)

ProgressMode = Literal["bar", "jsonl", "none"]


class Progress(Protocol):
    def emit(self, event: Event) -> None: ...


class JsonlProgress:
    """Machine-readable events on ``stream`` (stdout by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self.stream.write(encode_event(event) + "\n")
        self.stream.flush()


class TextProgress:
    """A tqdm bar on stderr when ``bar`` and stderr is a terminal; otherwise plain lines."""

    def __init__(self, bar: bool, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.use_bar = bar and self.stream.isatty()
        self.quiet = not bar
        self._bar: Any = None

    def emit(self, event: Event) -> None:
        if isinstance(event, StartEvent):
            self._start(event)
        elif isinstance(event, FrameEvent):
            self._frame(event)
        elif isinstance(event, LogEvent):
            self._log(event.level, event.message)
        elif isinstance(event, DoneEvent):
            self._close_bar()
            if not self.quiet:
                self._write(f"done: {event.frames_done}/{event.frames_total} frames, "
                            f"{event.labelled_instances} labelled instances, "
                            f"{event.seconds:.1f} s -> {event.out}")
        elif isinstance(event, ErrorEvent):
            self._close_bar()
            self._write(f"error: {event.message}")

    def _start(self, event: StartEvent) -> None:
        if event.skipped:
            self._log("info", f"resuming: {event.skipped} of {event.total} frames already done")
        if self.use_bar:
            from tqdm import tqdm

            # A terminal that reports no size (a bare pseudo-terminal, 0 x 0) would get
            # no bar at all from tqdm: assume 80 columns and 20 lines where unknown.
            columns, lines = _terminal_size(self.stream)
            sized = columns > 0 and lines > 0
            self._bar = tqdm(total=event.total, initial=event.skipped, unit="frame",
                             file=self.stream, dynamic_ncols=sized,
                             ncols=None if sized else columns or 80,
                             nrows=None if sized else lines or 20, desc="render")

    def _frame(self, event: FrameEvent) -> None:
        if self._bar is not None:
            self._bar.update(event.done - self._bar.n)
        elif not self.quiet:
            self._write(f"[{event.done}/{event.total}] {event.name}")

    def _log(self, level: str, message: str) -> None:
        if self.quiet and level == "info":
            return
        text = message if level == "info" else f"{level}: {message}"
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


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
