"""Render jobs of the sidecar: each one is a child ``gs-backend render --progress jsonl``.

Why child processes rather than a thread in the server: the job then *is* the command
line render (the same dataset, resume and Ctrl-C semantics, tested once), its events are
the very lines ``--progress jsonl`` prints, a crash or a runaway allocation in a job cannot
take the server (and its previews) down, and cancelling is the command line's own Ctrl-C:
one SIGINT, after which the finished frames are kept and the folder resumes. The price, a
process start and an asset load per job, is small next to a dataset render.

Jobs run one at a time, first come first served (they share the device; two renders into
one folder would also fight over it). Each child runs in its own session, so a Ctrl-C typed
at the server's terminal reaches it once, through the server; on Linux it also gets SIGINT
if the server dies without cleaning up (``PR_SET_PDEATHSIG``), so even a killed server
leaves resumable folders.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gs_contract.protocol import (
    DoneEvent,
    ErrorEvent,
    FrameEvent,
    StartEvent,
    decode_event,
    encode_event,
)
from gs_contract.sidecar import TERMINAL_STATES, RenderJobRequest, job_status_body

SHUTDOWN_GRACE_S = 60.0
"""How long shutdown waits for an interrupted child to finish its frames before killing it
(a killed child also leaves a resumable folder: every file is written atomically)."""
_POLL_S = 1.0


@dataclass
class Job:
    """One render job and what its events said so far."""

    id: str
    request: RenderJobRequest
    state: str = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    summary: dict[str, Any] | None = None
    lines: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    process: subprocess.Popen[str] | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def status(self) -> dict[str, Any]:
        """The ``GET /v1/renders/{id}`` answer."""
        return job_status_body(self.id, self.state, self.done, self.total, self.error,
                               self.summary)


class JobManager:
    """Queue, run, follow and cancel render jobs.

    Args:
        device: ``--device`` for the children (as ``serve`` got it).
        rasterizer: ``--rasterizer`` for the children.
    """

    def __init__(self, device: str = "auto", rasterizer: str = "auto") -> None:
        self.device = device
        self.rasterizer = rasterizer
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="gs-render-jobs", daemon=True)
        self._worker.start()

    def submit(self, request: RenderJobRequest) -> Job:
        """Queue a job (its request already checked)."""
        job = Job(uuid.uuid4().hex, request)
        with self._cond:
            if self._closing:
                job.state, job.error = "cancelled", "the sidecar is shutting down"
            else:
                self._queue.append(job)
            self._jobs[job.id] = job
            self._cond.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def cancel(self, job: Job) -> None:
        """Cancel a job: a queued one never starts; a running one gets SIGINT (its folder
        stays resumable) and is ``cancelled`` once its process has ended. A finished job
        stays as it is."""
        with self._cond:
            if job.finished:
                return
            job.cancel_requested = True
            if job.state == "queued":
                self._queue.remove(job)
                job.state = "cancelled"
            elif job.process is not None:
                _interrupt(job.process)
            self._cond.notify_all()

    def follow(self, job: Job) -> Iterator[str]:
        """The job's event lines (each with its newline) from the first, as they come,
        until the job has finished."""
        sent = 0
        while True:
            with self._cond:
                while sent >= len(job.lines) and not job.finished:
                    self._cond.wait(_POLL_S)
                chunk, end = job.lines[sent:], job.finished
            sent += len(chunk)
            for line in chunk:
                yield line + "\n"
            if end and sent >= len(job.lines):
                return

    def interrupt_all(self) -> None:
        """Begin shutting down (never blocks): refuse new jobs, cancel queued ones,
        SIGINT the running one."""
        with self._cond:
            self._closing = True
            for job in list(self._queue):
                job.state, job.cancel_requested = "cancelled", True
                job.error = "the sidecar shut down before the job started"
            self._queue.clear()
            for job in self._jobs.values():
                if job.state == "running" and job.process is not None:
                    job.cancel_requested = True
                    _interrupt(job.process)
            self._cond.notify_all()

    def shutdown(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Interrupt everything and wait for the running child (killed after ``grace_s``)."""
        self.interrupt_all()
        self._worker.join(grace_s)
        if self._worker.is_alive():
            for job in self._jobs.values():
                if job.process is not None and job.process.poll() is None:
                    job.process.kill()
            self._worker.join(10.0)

    def command(self, request: RenderJobRequest) -> list[str]:
        """The child's command line (:func:`render_command` with this manager's options)."""
        return render_command(request, self.device, self.rasterizer)

    # -- the worker thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                try:
                    job.process = self._start(job.request)
                except OSError as exc:
                    job.state, job.error = "failed", f"cannot start the render: {exc}"
                    self._cond.notify_all()
                    continue
                job.state = "running"
                self._cond.notify_all()
            self._read(job)

    def _start(self, request: RenderJobRequest) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(request),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True, encoding="utf-8",
            errors="replace", bufsize=1, start_new_session=True,
            preexec_fn=_interrupt_when_parent_dies if sys.platform == "linux" else None)

    def _read(self, job: Job) -> None:
        process = job.process
        assert process is not None and process.stdout is not None
        for raw in process.stdout:
            event = decode_event(raw)
            if event is None:
                continue
            with self._cond:
                job.lines.append(encode_event(event))
                _apply(job, event)
                self._cond.notify_all()
        code = process.wait()
        with self._cond:
            if code == 0:
                job.state = "done"
            elif job.cancel_requested:
                job.state = "cancelled"
            elif code == 130:
                job.state, job.error = "cancelled", job.error or "interrupted"
            else:
                job.state = "failed"
                job.error = job.error or f"the render ended with exit code {code}"
            self._cond.notify_all()


def render_command(request: RenderJobRequest, device: str, rasterizer: str) -> list[str]:
    """The ``gs-backend render`` command line of a job (paths are absolute; option values
    are attached with ``=`` so that one starting with ``-`` stays a value)."""
    command = [sys.executable, "-m", "gs_backend", "render", request.scenario_path,
               f"--out={request.out}", "--progress=jsonl", f"--device={device}",
               f"--rasterizer={rasterizer}"]
    if request.frames is not None:
        command.append(f"--frames={request.frames}")
    if request.shard is not None:
        command.append(f"--shard={request.shard}")
    if request.overwrite:
        command.append("--overwrite")
    return command


def _apply(job: Job, event: Any) -> None:
    """Update the job's status from one of its events."""
    if isinstance(event, StartEvent):
        job.total, job.done = event.total, event.skipped
    elif isinstance(event, FrameEvent):
        job.done, job.total = event.done, event.total
    elif isinstance(event, DoneEvent):
        job.summary = dataclasses.asdict(event)
    elif isinstance(event, ErrorEvent):
        job.error = event.message


def _interrupt(process: subprocess.Popen[str]) -> None:
    """Ctrl-C for a child (ignored when it has already ended)."""
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def _interrupt_when_parent_dies() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGINT when the thread that started it (the server's job
    thread) ends, e.g. when the server is killed."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGINT))
