"""A dataset render run by a sidecar (``POST /v1/renders``), followed like a child process.

:class:`SidecarRenderJob` has the interface of :class:`.backend_process.BackendJob` that
the Blender side uses (``state``, :meth:`poll`, :meth:`request_cancel`, :meth:`cancel`,
:meth:`wait`), so :mod:`..blender.render_job` shows its progress with the one copy of the
progress handling it has. The job's events (the lines ``--progress jsonl`` prints) arrive
on a reader thread from ``GET /v1/renders/{id}/events`` and go into the same
:class:`.backend_process.JobState` by :meth:`JobState.apply`. When the stream ends the
reader asks the job's status until it is final; its state becomes the return code:
``done`` 0 (then the dataset is checked as after a child's exit), ``cancelled`` 130
(resumable), ``failed`` 2 with the job's error. A sidecar that stops answering ends the
job as failed, with a sentence saying so (its finished frames stay; rendering again
resumes).
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from gs_contract.protocol import Event, ExitCode, decode_event
from gs_contract.sidecar import JobStatus

from .backend_process import JobState, dataset_problem
from .sidecar_client import SidecarClient, SidecarError

STATUS_INTERVAL_S = 0.5
"""How often the reader asks a job's status once its event stream has ended early."""
STATE_CODES = {"done": ExitCode.OK, "cancelled": ExitCode.INTERRUPTED,
               "failed": ExitCode.BAD_INPUT}


class SidecarRenderJob:
    """A render job on a sidecar. ``poll()`` never blocks."""

    def __init__(self, client: SidecarClient, job_id: str, *, out_dir: Path,
                 fingerprint: str | None = None) -> None:
        self.client = client
        self.job_id = job_id
        self.out_dir = out_dir
        self.fingerprint = fingerprint
        self.state = JobState()
        self.lost: SidecarError | None = None  # why the sidecar stopped answering
        self._inbox: queue.Queue[Event | JobStatus | SidecarError] = queue.Queue()
        self._cancel_sent = False
        self._reader = threading.Thread(target=self._follow, daemon=True,
                                        name="gsds-sidecar-events")
        self._reader.start()

    # --- reader thread ----------------------------------------------------------------

    def _follow(self) -> None:
        try:
            for line in self.client.render_events(self.job_id):
                event = decode_event(line)
                if event is not None:
                    self._inbox.put(event)
        except SidecarError:
            pass  # the status says what became of the job (or that the sidecar is gone)
        while True:
            try:
                status = self.client.render_status(self.job_id)
            except SidecarError as exc:
                self._inbox.put(exc)
                return
            self._inbox.put(status)
            if status.finished:
                return
            time.sleep(STATUS_INTERVAL_S)

    # --- main thread ------------------------------------------------------------------

    def poll(self) -> JobState:
        """Apply what arrived since the last call (``state.new_events``); never blocks."""
        state = self.state
        state.new_events = []
        while not state.finished:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, SidecarError):
                self._lost(item)
            elif isinstance(item, JobStatus):
                self._status(item)
            else:
                state.new_events.append(item)
                state.apply(item)
        return state

    def _status(self, status: JobStatus) -> None:
        state = self.state
        state.total = max(state.total, status.total)
        state.done = max(state.done, status.done)
        if not status.finished:
            return
        state.finished = True
        state.returncode = int(STATE_CODES[status.state])
        if status.state == "done":
            state.error = dataset_problem(self.out_dir, self.fingerprint)
        elif status.state == "failed":
            state.error = state.error or status.error or "the sidecar's render job failed"

    def _lost(self, error: SidecarError) -> None:
        self.lost = error
        state = self.state
        state.finished = True
        state.returncode = int(ExitCode.INTERNAL)
        state.error = (f"the sidecar stopped answering during the render ({error}); the "
                       "finished frames are kept: start the sidecar again (Retry) and render "
                       "again to resume")

    def request_cancel(self) -> None:
        """``DELETE`` the job (once); keep polling: it ends as cancelled, resumable."""
        self.state.cancel_requested = True
        if self._cancel_sent or self.state.finished:
            return
        self._cancel_sent = True
        try:
            self.client.cancel_render(self.job_id)
        except SidecarError as exc:
            self._inbox.put(exc)

    def wait(self, poll_interval: float = 0.05) -> JobState:
        """Poll until the job is final (blocking)."""
        while not self.poll().finished:
            time.sleep(poll_interval)
        return self.state

    def cancel(self, interrupt_grace: float = 20.0) -> JobState:
        """Cancel and wait (blocking; for scripts and shutdown). The sidecar decides how
        long its frames in flight take; ``interrupt_grace`` bounds the wait, after which
        the job is left to the sidecar and reported as cancelled."""
        self.request_cancel()
        deadline = time.monotonic() + interrupt_grace
        while not self.poll().finished and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.state.finished:
            self.state.finished = True
            self.state.returncode = int(ExitCode.INTERRUPTED)
        return self.state
