"""Run ``gs-backend render`` as a child process and follow its progress (no bpy here).

The add-on talks to the backend only through the scenario file and this child
process (DESIGN: two processes, one contract). The backend prints one JSON event
per line on stdout with ``--progress jsonl``::

    {"event": "start", "total": N, "skipped": S, ...}
    {"event": "frame", "done": i, "total": N, "name": "frame_0003", "instances": k, ...}
    {"event": "log", "level": "warning", "message": "..."}
    {"event": "done", "frames_done": ..., "labelled_instances": ..., "seconds": ...}
    {"event": "error", "message": "..."}

and exits 0 (done), 2 (bad input), 130 (interrupted: the output folder is resumable)
or 1 (internal error). :class:`BackendJob` reads stdout on a background thread
into a queue and collects stderr, so that :meth:`BackendJob.poll` never blocks:
Blender calls it from a timer.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DEFAULT_COMMAND = "gs-backend"
# After a cancel request: how long the backend may take to finish the frames in
# flight (SIGINT) before it is terminated, and then killed.
INTERRUPT_GRACE_S = 20.0
TERMINATE_GRACE_S = 5.0


class BackendError(Exception):
    """The backend cannot be started (command not found, not executable, ...)."""


# ---------------------------------------------------------------------------
# command line


def backend_argv(command: str | None) -> list[str]:
    """The argv prefix that runs the backend, from the preference string.

    - empty: ``gs-backend`` from PATH;
    - an existing file path (spaces allowed): that program; a Python interpreter
      (its name starts with ``python``) runs ``-m gs_backend``;
    - otherwise a command line split like a shell does, e.g.
      ``/opt/venv/bin/python -m gs_backend`` or ``gs-backend``.

    Raises:
        BackendError: the program is not found.
    """
    command = (command or "").strip()
    if not command:
        command = DEFAULT_COMMAND
    if os.path.isfile(os.path.expanduser(command)):
        argv = [os.path.expanduser(command)]
    else:
        try:
            argv = shlex.split(command, posix=os.name != "nt")
        except ValueError as exc:
            raise BackendError(f"cannot parse the backend command {command!r}: {exc}") from None
    program = shutil.which(argv[0]) or (argv[0] if os.path.isfile(argv[0]) else None)
    if program is None:
        raise BackendError(
            f"backend command {argv[0]!r} not found: install the backend (`make setup` "
            "creates .venv/bin/gs-backend) and set its path in the add-on preferences")
    argv[0] = program
    if len(argv) == 1 and _is_python(program):
        argv += ["-m", "gs_backend"]
    return argv


def _is_python(program: str) -> bool:
    name = Path(program).name.lower()
    if name.endswith(".exe"):
        name = name[:-4]
    return name.startswith("python")


def render_argv(prefix: Sequence[str], scenario: str | os.PathLike[str],
                out_dir: str | os.PathLike[str], *, device: str = "auto",
                overwrite: bool = False, frames: str | None = None) -> list[str]:
    """``PREFIX render SCENARIO --out DIR --progress jsonl --device D [--overwrite]``."""
    argv = [*prefix, "render", str(scenario), "--out", str(out_dir),
            "--progress", "jsonl", "--device", device.lower()]
    if overwrite:
        argv.append("--overwrite")
    if frames:
        argv += ["--frames", frames]
    return argv


# ---------------------------------------------------------------------------
# state


@dataclass(frozen=True)
class RenderSummary:
    """From the backend's ``done`` event."""

    frames_done: int
    frames_total: int
    labelled_instances: int
    seconds: float
    out: str | None = None

    def text(self) -> str:
        return (f"{self.frames_done} frames, {self.labelled_instances} labelled instances, "
                f"{self.seconds:.1f} s")


@dataclass
class JobState:
    """What is known about a backend run. ``new_events``: events since the last poll."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    last_frame: str | None = None
    finished: bool = False
    returncode: int | None = None
    cancel_requested: bool = False
    error: str | None = None
    summary: RenderSummary | None = None
    new_events: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Frames done / frames selected (resumed frames count as done), 0..1."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def succeeded(self) -> bool:
        return self.finished and self.returncode == EXIT_OK

    @property
    def interrupted(self) -> bool:
        return self.finished and (self.returncode == EXIT_INTERRUPTED
                                  or (self.cancel_requested and self.returncode != EXIT_OK))

    def status_text(self) -> str:
        """One line for the UI."""
        if self.finished:
            if self.succeeded and self.summary is not None:
                return "Done: " + self.summary.text()
            if self.interrupted:
                return (f"Cancelled after {self.done} of {self.total} frames; render again "
                        "to resume")
            return f"Failed: {self.error}"
        if self.cancel_requested:
            return "Stopping (finishing the frames in flight)..."
        if not self.total:
            return "Starting the backend..."
        name = f" ({self.last_frame})" if self.last_frame else ""
        return f"Rendering {self.done}/{self.total}{name}"


# ---------------------------------------------------------------------------
# the child process


class BackendJob:
    """A running ``gs-backend render ... --progress jsonl``.

    Use :meth:`start`; then call :meth:`poll` (non-blocking) until ``state.finished``.
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None) -> None:
        self.argv = list(argv)
        self.state = JobState()
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=200)
        self._stdout_done = False
        self._cancel_at: float | None = None
        self._terminated_at: float | None = None
        self.interrupt_grace = INTERRUPT_GRACE_S
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            # Its own process group, so that CTRL_BREAK_EVENT reaches only the backend.
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        try:
            self.process = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, cwd=cwd, text=True, encoding="utf-8",
                errors="replace", bufsize=1, **kwargs)
        except OSError as exc:
            raise BackendError(f"cannot start the backend {self.argv[0]!r}: {exc}") from None
        self._stdout_thread = threading.Thread(target=self._read_stdout, daemon=True,
                                               name="gsds-backend-stdout")
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True,
                                               name="gsds-backend-stderr")
        self._stdout_thread.start()
        self._stderr_thread.start()

    @classmethod
    def start(cls, command: str | None, scenario: str | os.PathLike[str],
              out_dir: str | os.PathLike[str], *, device: str = "auto",
              overwrite: bool = False, frames: str | None = None) -> BackendJob:
        """Start ``command render scenario --out out_dir`` (see :func:`backend_argv`)."""
        argv = render_argv(backend_argv(command), scenario, out_dir, device=device,
                           overwrite=overwrite, frames=frames)
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONHOME", None)  # Blender's own Python home must not leak into a venv
        env.pop("PYTHONPATH", None)
        return cls(argv, env=env)

    # --- reader threads -------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if not isinstance(event, dict) or "event" not in event:
                event = {"event": "log", "level": "info", "message": line}
            self._events.put(event)
        self._events.put(None)  # end of stream

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())

    # --- polling ----------------------------------------------------------------------

    def poll(self) -> JobState:
        """Apply the events that arrived since the last call; never blocks.

        ``state.new_events`` holds them; ``state.finished`` turns True once the process
        has exited and its output is read.
        """
        state = self.state
        state.new_events = []
        while not self._stdout_done:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event is None:
                self._stdout_done = True
            else:
                state.new_events.append(event)
                self._apply(event)
        self._escalate_cancel()
        if self._stdout_done and not state.finished:
            returncode = self.process.poll()
            if returncode is not None:
                self._finish(returncode)
        return state

    def _apply(self, event: dict[str, Any]) -> None:
        state = self.state
        kind = event.get("event")
        if kind == "start":
            state.total = int(event.get("total", 0))
            state.skipped = int(event.get("skipped", 0))
            state.done = state.skipped
        elif kind == "frame":
            state.done = int(event.get("done", state.done + 1))
            state.total = int(event.get("total", state.total))
            state.last_frame = event.get("name")
        elif kind == "log":
            state.logs.append((str(event.get("level", "info")), str(event.get("message", ""))))
        elif kind == "done":
            state.summary = RenderSummary(
                frames_done=int(event.get("frames_done", state.done)),
                frames_total=int(event.get("frames_total", state.total)),
                labelled_instances=int(event.get("labelled_instances", 0)),
                seconds=float(event.get("seconds", 0.0)),
                out=event.get("out"))
        elif kind == "error":
            state.error = str(event.get("message", "unknown error"))

    def _finish(self, returncode: int) -> None:
        state = self.state
        self._stderr_thread.join(timeout=1.0)
        state.finished = True
        state.returncode = returncode
        if returncode != EXIT_OK and not state.error:
            last = self._stderr[-1] if self._stderr else None
            state.error = last or f"the backend exited with code {returncode}"

    # --- cancelling -------------------------------------------------------------------

    def request_cancel(self) -> None:
        """Ask the backend to stop (Ctrl-C: it finishes the frames in flight and exits 130,
        leaving the folder resumable). Non-blocking: keep polling; :meth:`poll` terminates,
        then kills, a backend that does not stop in time."""
        if self.state.cancel_requested or self.process.poll() is not None:
            self.state.cancel_requested = True
            return
        self.state.cancel_requested = True
        self._cancel_at = time.monotonic()
        try:
            if os.name == "nt":
                self.process.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                self.process.send_signal(signal.SIGINT)
        except OSError:  # exited meanwhile
            pass

    def _escalate_cancel(self) -> None:
        """SIGINT ignored for ``interrupt_grace`` s: terminate; still alive after
        ``TERMINATE_GRACE_S`` more: kill."""
        if self._cancel_at is None or self.process.poll() is not None:
            return
        now = time.monotonic()
        if self._terminated_at is None and now - self._cancel_at > self.interrupt_grace:
            self._terminated_at = now
            self.process.terminate()
        elif self._terminated_at is not None and now - self._terminated_at > TERMINATE_GRACE_S:
            self.process.kill()

    def cancel(self, interrupt_grace: float = INTERRUPT_GRACE_S) -> JobState:
        """Stop the backend and wait for it (blocking; for scripts and shutdown)."""
        self.interrupt_grace = interrupt_grace
        self.request_cancel()
        return self.wait()

    def wait(self, poll_interval: float = 0.05) -> JobState:
        """Poll until the backend has exited and its output is read (blocking)."""
        while not self.poll().finished:
            time.sleep(poll_interval)
        return self.state

    @property
    def stderr_tail(self) -> list[str]:
        """The last lines the backend wrote to stderr."""
        return list(self._stderr)

