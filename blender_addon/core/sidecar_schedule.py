"""When to render a preview, and which result to show (pure: no bpy, no HTTP).

Two small pieces that the live preview (:mod:`..blender.live_preview`) drives from
Blender's handlers and its timer, written as plain objects with an injectable clock and
thread starter so that tests run them step by step, without sleeping:

- :class:`Debouncer`: the scene changed (``mark``); render once it has been quiet for
  ``delay`` seconds, or at the latest ``max_wait`` seconds after the first change, so
  that scrubbing the timeline still updates the preview now and then.
- :class:`LatestWins`: runs requests on a worker thread, at most one at a time. A request
  submitted while another is in flight waits (a newer one replaces it); when the one in
  flight finishes and a newer request exists, its result is dropped: only the result of
  the latest request is ever shown.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Clock = Callable[[], float]
P = TypeVar("P")  # a request's payload
R = TypeVar("R")  # its result

DEBOUNCE_S = 0.25
MAX_WAIT_S = 1.0


class Debouncer:
    """Trailing-edge debounce with a maximum wait. Times in seconds of ``clock``."""

    def __init__(self, delay: float = DEBOUNCE_S, max_wait: float = MAX_WAIT_S,
                 clock: Clock = time.monotonic) -> None:
        self.delay = delay
        self.max_wait = max_wait
        self.clock = clock
        self._first: float | None = None  # first change not rendered yet
        self._last: float | None = None  # latest change

    @property
    def dirty(self) -> bool:
        """A change happened that no render has picked up yet."""
        return self._first is not None

    def mark(self) -> None:
        """Something changed now."""
        now = self.clock()
        if self._first is None:
            self._first = now
        self._last = now

    def due(self) -> bool:
        """True once quiet for ``delay`` s since the last change, or ``max_wait`` s after
        the first one."""
        if self._first is None or self._last is None:
            return False
        now = self.clock()
        return now - self._last >= self.delay or now - self._first >= self.max_wait

    def clear(self) -> None:
        """A render picked the changes up."""
        self._first = self._last = None


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """A finished request: its number, and its result or the exception it raised."""

    seq: int
    result: R | None = None
    error: BaseException | None = None


def start_daemon_thread(target: Callable[[], None]) -> None:
    """The default way :class:`LatestWins` runs a request: a daemon thread."""
    threading.Thread(target=target, daemon=True, name="gsds-preview").start()


class LatestWins(Generic[P, R]):
    """At most one request in flight, the newest one waiting, stale results dropped.

    ``run(payload)`` executes on the worker (it must not touch bpy); :meth:`submit` and
    :meth:`collect` are called from Blender's main thread. ``start_thread(target)`` runs
    ``target`` on another thread (tests pass a starter they step by hand).
    """

    def __init__(self, run: Callable[[P], R],
                 start_thread: Callable[[Callable[[], None]], None] = start_daemon_thread,
                 ) -> None:
        self._run = run
        self._start_thread = start_thread
        self._seq = 0
        self._in_flight: int | None = None
        self._waiting: tuple[int, P] | None = None
        self._finished: queue.Queue[Outcome[R]] = queue.Queue()
        self.dropped = 0  # results thrown away because a newer request existed
        self.done = threading.Event()  # set whenever a request finishes

    @property
    def latest(self) -> int:
        """The number of the newest request (0: none yet)."""
        return self._seq

    @property
    def busy(self) -> bool:
        """A request is in flight or waiting."""
        return self._in_flight is not None or self._waiting is not None

    def submit(self, payload: P) -> int:
        """Queue a request; returns its number. Replaces a request still waiting."""
        self._seq += 1
        if self._in_flight is None:
            self._start(self._seq, payload)
        else:
            self._waiting = (self._seq, payload)
        return self._seq

    def collect(self) -> Outcome[R] | None:
        """The outcome of the latest request, once it has finished (else None); starts
        the waiting request when the worker is free. Never blocks."""
        shown: Outcome[R] | None = None
        while True:
            try:
                outcome = self._finished.get_nowait()
            except queue.Empty:
                break
            self._in_flight = None
            if outcome.seq == self._seq:
                shown = outcome
            else:
                self.dropped += 1
        if self._in_flight is None and self._waiting is not None:
            seq, payload = self._waiting
            self._waiting = None
            self._start(seq, payload)
        return shown

    def wait(self, timeout: float) -> Outcome[R] | None:
        """Block until the latest request has finished (for scripts and background mode,
        where no timer calls :meth:`collect`); None when nothing is pending or after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            outcome = self.collect()
            remaining = deadline - time.monotonic()
            if outcome is not None or not self.busy or remaining <= 0:
                return outcome
            self.done.wait(remaining)
            self.done.clear()

    def _start(self, seq: int, payload: P) -> None:
        self._in_flight = seq

        def work() -> None:
            try:
                outcome: Outcome[R] = Outcome(seq, result=self._run(payload))
            except Exception as exc:  # handed to the main thread, which reports it
                outcome = Outcome(seq, error=exc)
            self._finished.put(outcome)
            self.done.set()

        self._start_thread(work)
