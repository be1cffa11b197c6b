"""Run ``gs-backend render`` as a child process and follow its progress (no bpy here).

The add-on talks to the backend only through the scenario file and this child process
(DESIGN: two processes, one contract). With ``--progress jsonl`` the backend prints one
JSON event per line on stdout; :mod:`gs_contract.protocol` defines the events and the
exit codes (listed in ``docs/protocol.md``), and decodes each line into a typed event
without ever raising. :class:`BackendJob` reads stdout and stderr on background
threads, so that :meth:`BackendJob.poll` never blocks: Blender calls it from a timer.

Reliability rules:

- the job ends when the *process* has exited, not when its stdout closes: a wrapper
  (``conda run``, ``srun``, ``ssh``) may leave a child that keeps the pipe open;
- the backend runs in its own process group (session), and cancelling signals the whole
  group, so a wrapper's children stop too; what is left of the group when the job ends
  is terminated;
- exit 0 is success only if the dataset is there: ``manifest.json`` in the output
  folder, of this scenario when its fingerprint is known.
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

from gs_contract.dataset import MANIFEST_FORMAT, DatasetLayout
from gs_contract.protocol import (
    DoneEvent,
    ErrorEvent,
    Event,
    ExitCode,
    FrameEvent,
    LogEvent,
    StartEvent,
    decode_event,
)

DEFAULT_COMMAND = "gs-backend"
# After a cancel request: how long the backend may take to finish the frames in
# flight (SIGINT) before it is terminated, and then killed.
INTERRUPT_GRACE_S = 20.0
TERMINATE_GRACE_S = 5.0
# After the process exited without a final event: how long its stdout may stay open
# (held by a wrapper's child) before the job ends anyway.
PIPE_GRACE_S = 2.0
# A process killed by SIGINT (it died before it could handle it) was interrupted too.
INTERRUPTED_CODES = frozenset({int(ExitCode.INTERRUPTED), -int(signal.SIGINT)})


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


def backend_env() -> dict[str, str]:
    """The environment of a backend child: this process's, unbuffered, without Blender's
    ``PYTHONHOME`` / ``PYTHONPATH`` (they must not leak into the backend's venv)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONHOME", None)
    env.pop("PYTHONPATH", None)
    return env


def _is_python(program: str) -> bool:
    name = Path(program).name.lower()
    if name.endswith(".exe"):
        name = name[:-4]
    return name.startswith("python")


def render_argv(prefix: Sequence[str], scenario: str | os.PathLike[str],
                out_dir: str | os.PathLike[str], *, device: str = "auto",
                overwrite: bool = False, frames: str | None = None,
                shard: str | None = None) -> list[str]:
    """``PREFIX render SCENARIO --out DIR --progress jsonl --device D [--overwrite]
    [--frames A:B] [--shard I/N|auto]``."""
    argv = [*prefix, "render", str(scenario), "--out", str(out_dir),
            "--progress", "jsonl", "--device", device.lower()]
    if overwrite:
        argv.append("--overwrite")
    if frames:
        argv += ["--frames", frames]
    if shard:
        argv += ["--shard", shard]
    return argv


# ---------------------------------------------------------------------------
# state


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
    summary: DoneEvent | None = None
    new_events: list[Event] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Frames done / frames selected (resumed frames count as done), 0..1."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def succeeded(self) -> bool:
        """Exit 0 and the dataset found where it should be."""
        return self.finished and self.returncode == ExitCode.OK and self.error is None

    @property
    def interrupted(self) -> bool:
        return self.finished and (self.returncode in INTERRUPTED_CODES
                                  or (self.cancel_requested and self.returncode != ExitCode.OK))

    def apply(self, event: Event) -> bool:
        """Take one progress event into account; True for a final one (done, error).
        One rule for every way the events arrive (a child's stdout, a sidecar's stream)."""
        if isinstance(event, StartEvent):
            self.total = event.total
            self.skipped = event.skipped
            self.done = event.skipped
        elif isinstance(event, FrameEvent):
            self.done = event.done
            self.total = event.total
            self.last_frame = event.name
        elif isinstance(event, LogEvent):
            self.logs.append((event.level, event.message))
        elif isinstance(event, DoneEvent):
            self.summary = event
            return True
        elif isinstance(event, ErrorEvent):
            self.error = event.message
            return True
        return False

    def status_text(self) -> str:
        """One line for the UI."""
        if self.finished:
            if self.succeeded:
                return "Done: " + (self.summary.text() if self.summary is not None
                                   else f"{self.done} frames")
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


def dataset_problem(out_dir: Path, fingerprint: str | None) -> str | None:
    """Why the dataset a backend reported as rendered is not in ``out_dir`` (None when it
    is): ``manifest.json`` readable, a dataset manifest, of the scenario with
    ``fingerprint`` when that is known."""
    manifest_path = DatasetLayout(out_dir).manifest
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"the backend reported success but {manifest_path} is not readable ({exc})"
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return f"the backend reported success but {manifest_path} is not a dataset manifest"
    if fingerprint is not None and manifest.get("scenario_sha256") != fingerprint:
        return (f"the backend reported success but {manifest_path} describes another "
                "scenario")
    return None


# ---------------------------------------------------------------------------
# the child process


class BackendJob:
    """A running ``gs-backend render ... --progress jsonl``.

    Use :meth:`start_render` (or a subclass's own start); then call :meth:`poll`
    (non-blocking) until ``state.finished``.
    ``out_dir`` (and ``fingerprint``, the scenario's content hash) let the job check the
    dataset before it reports success.

    Another backend command reuses the process handling (process group, cancelling,
    stderr tail, end of job) by overriding two hooks: :meth:`_stdout_line` (what a line
    of stdout means) and :meth:`_check_result` (whether an exit 0 delivered its output).
    """

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None,
                 out_dir: str | os.PathLike[str] | None = None,
                 fingerprint: str | None = None) -> None:
        self.argv = list(argv)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.fingerprint = fingerprint
        self.state = JobState()
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=200)
        self._stdout_done = False
        self._final_event = False  # a done or error event arrived
        self._exited_at: float | None = None
        self._cancel_at: float | None = None
        self._terminated_at: float | None = None
        self.interrupt_grace = INTERRUPT_GRACE_S
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            # Its own process group, so that CTRL_BREAK_EVENT reaches only the backend.
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # its own process group, signalled as one
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
    def start_render(cls, command: str | None, scenario: str | os.PathLike[str],
              out_dir: str | os.PathLike[str], *, device: str = "auto",
              overwrite: bool = False, frames: str | None = None,
              fingerprint: str | None = None, shard: str | None = None) -> BackendJob:
        """Start ``command render scenario --out out_dir`` (see :func:`backend_argv`)."""
        argv = render_argv(backend_argv(command), scenario, out_dir, device=device,
                           overwrite=overwrite, frames=frames, shard=shard)
        return cls(argv, env=backend_env(), out_dir=out_dir, fingerprint=fingerprint)

    # --- reader threads -------------------------------------------------------------

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._stdout_line(line)
        self._events.put(None)  # end of stream

    def _stdout_line(self, line: str) -> None:
        """One line of the backend's stdout (reader thread): a progress event, queued."""
        event = decode_event(line)
        if event is not None:
            self._events.put(event)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.strip():
                self._stderr.append(line.rstrip())

    # --- polling ----------------------------------------------------------------------

    def poll(self) -> JobState:
        """Apply the events that arrived since the last call; never blocks.

        ``state.new_events`` holds them; ``state.finished`` turns True once the process
        has exited and its output is read (or, when a child of it keeps the pipe open,
        once its final event arrived or :data:`PIPE_GRACE_S` passed).
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
        if not state.finished:
            returncode = self.process.poll()
            if returncode is not None:
                now = time.monotonic()
                if self._exited_at is None:
                    self._exited_at = now
                if self._stdout_done or self._final_event \
                        or now - self._exited_at > PIPE_GRACE_S:
                    self._finish(returncode)
        return state

    def _apply(self, event: Event) -> None:
        if self.state.apply(event):
            self._final_event = True

    def _finish(self, returncode: int) -> None:
        state = self.state
        self._signal_group(signal.SIGTERM)  # what is left of it: a wrapper's children
        self._stderr_thread.join(timeout=1.0)
        state.finished = True
        state.returncode = returncode
        if returncode == ExitCode.OK:
            state.error = self._check_result()
        elif not state.error:
            last = self._stderr[-1] if self._stderr else None
            state.error = last or f"the backend exited with code {returncode}"

    def _check_result(self) -> str | None:
        """Why the dataset the backend reported is not there (None when it is); called
        once, after a successful exit, with stdout read."""
        if self.out_dir is None:
            return None
        return dataset_problem(self.out_dir, self.fingerprint)

    # --- cancelling -------------------------------------------------------------------

    def request_cancel(self) -> None:
        """Ask the backend to stop (Ctrl-C to its whole process group: it finishes the
        frames in flight and exits 130, leaving the folder resumable). Non-blocking: keep
        polling; :meth:`poll` terminates, then kills, a backend that does not stop in
        time."""
        already = self.state.cancel_requested
        self.state.cancel_requested = True
        if already or self.process.poll() is not None:
            return
        self._cancel_at = time.monotonic()
        self._signal_group(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGINT)

    def _escalate_cancel(self) -> None:
        """SIGINT ignored for ``interrupt_grace`` s: terminate; still alive after
        ``TERMINATE_GRACE_S`` more: kill (the whole group each time)."""
        if self._cancel_at is None or self.process.poll() is not None:
            return
        now = time.monotonic()
        if self._terminated_at is None and now - self._cancel_at > self.interrupt_grace:
            self._terminated_at = now
            self._signal_group(signal.SIGTERM)
        elif self._terminated_at is not None and now - self._terminated_at > TERMINATE_GRACE_S:
            self._signal_group(signal.SIGKILL if os.name != "nt" else signal.SIGTERM)

    def _signal_group(self, signum: int) -> None:
        """Send ``signum`` to the backend's process group (Windows: to the process)."""
        try:
            if os.name == "nt":
                if signum == signal.SIGTERM:
                    self.process.terminate()
                else:
                    self.process.send_signal(signum)
            else:
                os.killpg(self.process.pid, signum)
        except OSError:  # the group is gone already
            pass

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
