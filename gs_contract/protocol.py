"""The backend <-> caller protocol of ``gs-backend render``: exit codes and progress events.

``gs-backend render ... --progress jsonl`` prints one JSON object per line on stdout,
each with an ``"event"`` key naming one of the dataclasses below (``start``, ``frame``,
``log``, ``done``, ``error``) and that class's fields. The Blender add-on,
``scripts/render_blend.py`` and any other program read them with :func:`decode_event`;
the backend writes them with :func:`encode_event`. ``docs/protocol.md`` documents the
same definitions (a test keeps the two in step).

Decoding is tolerant, because the line comes from another program (perhaps another
version, perhaps a wrapper such as ``conda run`` that prints its own text): a line that
is not an event, an unknown event, or an event whose fields have the wrong types
becomes a :class:`LogEvent` carrying the text, never an exception. Unknown fields of a
known event are ignored, so new fields can be added without breaking old readers.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

LogLevel = Literal["info", "warning", "error"]


class ExitCode(IntEnum):
    """Exit status of ``gs-backend`` (and of ``scripts/render_blend.py``); see
    :data:`EXIT_CODE_MEANINGS`."""

    OK = 0
    INTERNAL = 1
    BAD_INPUT = 2
    INTERRUPTED = 130


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success: every selected frame is in the dataset",
    ExitCode.INTERNAL: "an unexpected error (a bug): the traceback is on stderr, for a "
                       "bug report",
    ExitCode.BAD_INPUT: "bad input, one line on stderr naming the file and the field; also "
                        "an output folder that cannot be written (read-only, disk full). "
                        "Finished frames are kept",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, SIGINT; `render_blend.py` also on SIGTERM): "
                          "finished frames are kept and the same command resumes",
}


def _doc(text: str) -> dict[str, str]:
    """Field metadata: the field's meaning (``docs/protocol.md`` lists it)."""
    return {"doc": text}


@dataclass(frozen=True)
class StartEvent:
    """The assets are loaded and the folder claimed; rendering begins."""

    EVENT: ClassVar[str] = "start"
    total: int = field(metadata=_doc("frames selected for this run (resumed ones included)"))
    skipped: int = field(metadata=_doc("of those, frames finished by an earlier run (resume)"))
    device: str = field(default="", metadata=_doc("the torch device, e.g. `cpu`, `cuda:0`"))
    out: str = field(default="", metadata=_doc("the output folder"))
    gaussians: dict[str, int] = field(
        default_factory=dict, metadata=_doc("asset name -> Gaussians loaded (after `keep`)"))


@dataclass(frozen=True)
class FrameEvent:
    """One more frame is completely written (its record is the last file written)."""

    EVENT: ClassVar[str] = "frame"
    done: int = field(metadata=_doc("frames finished so far, resumed ones included (1..total)"))
    total: int = field(metadata=_doc("frames selected for this run"))
    name: str = field(metadata=_doc("the frame's name (its file stem)"))
    split: str = field(default="", metadata=_doc("`train` or `val`"))
    instances: int = field(default=0, metadata=_doc("labelled instances in this frame"))
    seconds: float = field(default=0.0, metadata=_doc("seconds since the run started"))


@dataclass(frozen=True)
class LogEvent:
    """A message for the user; also how unreadable lines reach a reader."""

    EVENT: ClassVar[str] = "log"
    level: LogLevel = field(metadata=_doc("how serious: `warning` and `error` are shown "
                                          "to the user"))
    message: str = field(metadata=_doc("one line of text"))


@dataclass(frozen=True)
class DoneEvent:
    """The run finished and the dataset files (manifest, labels, COCO) are assembled."""

    EVENT: ClassVar[str] = "done"
    out: str = field(metadata=_doc("the output folder"))
    frames_total: int = field(metadata=_doc("frames in the scenario"))
    frames_selected: int = field(
        metadata=_doc("frames selected for this run (`--frames`, `--shard`)"))
    frames_rendered: int = field(metadata=_doc("frames rendered by this run"))
    frames_skipped: int = field(metadata=_doc("selected frames already finished before this run"))
    frames_done: int = field(metadata=_doc("frames in the dataset now (all runs and shards)"))
    labelled_instances: int = field(metadata=_doc("labelled instances in the dataset now"))
    seconds: float = field(metadata=_doc("duration of the run in seconds"))

    def text(self) -> str:
        """One line for people: ``4 frames, 7 labelled instances, 1.2 s``."""
        return (f"{self.frames_done} frames, {self.labelled_instances} labelled instances, "
                f"{self.seconds:.1f} s")


@dataclass(frozen=True)
class ErrorEvent:
    """The run stops: the reason, in the same words as the line on stderr. The exit code
    tells which kind (2 bad input, 130 interrupted, 1 internal error)."""

    EVENT: ClassVar[str] = "error"
    message: str = field(metadata=_doc("what went wrong, naming the file and field if known"))


Event = StartEvent | FrameEvent | LogEvent | DoneEvent | ErrorEvent
EVENT_TYPES: tuple[type, ...] = (StartEvent, FrameEvent, LogEvent, DoneEvent, ErrorEvent)
_BY_NAME: dict[str, type] = {cls.EVENT: cls for cls in EVENT_TYPES}


def encode_event(event: Event) -> str:
    """The JSON line of ``event`` (no trailing newline), e.g. ``{"event": "log", ...}``."""
    return json.dumps({"event": event.EVENT, **asdict(event)}, allow_nan=False)


def decode_event(line: str) -> Event | None:
    """The typed event of one output line; never raises.

    Returns None for a blank line. Anything that is not a well-formed event of a known
    kind (plain text, other JSON, a field of the wrong type, a missing field) comes back
    as a :class:`LogEvent`: level ``info`` with the text for lines that are not events,
    ``warning`` naming the problem for events that are malformed.
    """
    text = line.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return LogEvent("info", text)
    cls = _BY_NAME.get(data["event"])
    if cls is None:
        return LogEvent("info", text)
    problem = _check_fields(cls, data)
    if problem is not None:
        return LogEvent("warning", f"unreadable backend event ({problem}): {text}")
    return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _check_fields(cls: type, data: dict[str, Any]) -> str | None:
    """Why ``data`` is not a valid ``cls`` event (None when it is)."""
    hints = _hints(cls)
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                return f"{f.name} is missing"
            continue
        if not _has_type(data[f.name], hints[f.name]):
            return f"{f.name} = {data[f.name]!r:.40} is not {_type_name(hints[f.name])}"
    return None


def _has_type(value: Any, hint: Any) -> bool:
    """``value`` fits ``hint`` (int: a non-negative integer, not a bool; float: finite)."""
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        return isinstance(value, dict) and all(
            _has_type(k, key_hint) and _has_type(v, value_hint) for k, v in value.items())
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if hint is float:
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    """How ``docs/protocol.md`` writes a field's type."""
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(hint))
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        return f"object ({_type_name(key_hint)} -> {_type_name(value_hint)})"
    return {int: "integer >= 0", float: "number", str: "string"}[hint]


@dataclass(frozen=True)
class FieldDoc:
    """One field of an event, as ``docs/protocol.md`` lists it."""

    name: str
    type: str
    required: bool
    meaning: str


def field_docs(cls: type) -> list[FieldDoc]:
    """The fields of an event class with their JSON type and meaning, in order."""
    hints = _hints(cls)
    return [FieldDoc(f.name, _type_name(hints[f.name]),
                     f.default is MISSING and f.default_factory is MISSING, f.metadata["doc"])
            for f in fields(cls)]
