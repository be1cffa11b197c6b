"""Ctrl-C (SIGINT) that is never lost, at any stage of a run.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens
to be. Raised inside library code (torch's import runs Python callbacks from C++ that
swallow exceptions), it can vanish, and the run went on to the end and exited 0. So the
handler installed here also *remembers* the request; :func:`checkpoint` re-raises it at
the stage boundaries of a render (before and after loading, around each frame, before
assembling), and the command line checks it once more before reporting success.

Inside :func:`deferred` (imports of torch and friends) the signal is only noted and
raised when the block ends, so no library ever sees a ``KeyboardInterrupt`` mid-import.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()
_deferred_depth = 0


def install() -> None:
    """Handle SIGINT here (even when the parent started us with SIGINT ignored: for the
    protocol it always means "stop, keep the finished frames"). Main thread only."""
    _requested.clear()
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _requested.set()
    if _deferred_depth == 0:
        raise KeyboardInterrupt


def checkpoint() -> None:
    """Raise ``KeyboardInterrupt`` if SIGINT arrived, even if it was swallowed since."""
    if _requested.is_set():
        raise KeyboardInterrupt


@contextmanager
def deferred() -> Iterator[None]:
    """Note SIGINT inside the block; raise it (``KeyboardInterrupt``) when the block ends."""
    global _deferred_depth
    before = _requested.is_set()
    _deferred_depth += 1
    try:
        yield
    finally:
        _deferred_depth -= 1
    if not before:
        checkpoint()
