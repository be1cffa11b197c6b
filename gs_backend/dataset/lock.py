"""The output folder's lock: a lock file that works on NFS and survives a killed node.

``flock`` is not enough on shared storage (NFSv3 without lockd, some parallel file
systems, or locks lost when a client dies), so the lock is a *file*: a process writes its
identity (host, pid, time, a random token) to a private file and hard-links it to
``.gs-render.lock``. ``link`` is atomic on every POSIX file system, NFS included, so
exactly one process succeeds; the holder removes the file when it is done.

A holder that dies leaves the file behind. It counts as stale, and the next process
takes it over, when

- its holder ran on this host and that process is gone (known at once), or
- its file has not been touched for :data:`STALE_AFTER_S`: a live holder touches it
  every :data:`HEARTBEAT_S` from a background thread, so only a dead node (or one whose
  clock is off by more than a minute) lets it age.

A stale lock is removed by renaming it to a unique name first, then checking that what
was renamed is the stale lock that was judged (two processes may judge it at once: only
the one whose rename moved that very file goes on). The lock only guards short steps
(claiming the folder, assembling the dataset-wide files); frames are written without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gs_backend import interrupt
from gs_backend.dataset.writes import host_tag, pid_alive

HEARTBEAT_S = 5.0
STALE_AFTER_S = 90.0
POLL_MAX_S = 1.0


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock file, as read from it."""

    host: str
    pid: int
    token: str
    age_s: float  # seconds since the holder last touched the file

    def is_stale(self) -> bool:
        if self.host == host_tag() and not pid_alive(self.pid):
            return True
        return self.age_s > STALE_AFTER_S

    def to_json(self) -> dict[str, Any]:
        age = round(self.age_s, 1) if self.age_s != float("inf") else None
        return {"host": self.host, "pid": self.pid, "age_s": age, "stale": self.is_stale()}


def read_holder(lock_file: Path) -> LockHolder | None:
    """The lock's holder, or None when the lock is free. A file that is not a lock of
    this format (an empty ``flock`` file of an older version) reads as a dead holder."""
    try:
        stat = lock_file.stat()
        text = lock_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    age = max(0.0, time.time() - stat.st_mtime)
    try:
        info = json.loads(text)
        return LockHolder(str(info["host"]), int(info["pid"]), str(info["token"]), age)
    except (ValueError, KeyError, TypeError):
        return LockHolder("", 0, "", float("inf"))


@contextlib.contextmanager
def file_lock(lock_file: Path) -> Iterator[None]:
    """Hold ``lock_file`` exclusively across hosts; wait (Ctrl-C still works) while
    another live process holds it. Creates the lock's folder."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    _acquire(lock_file, token)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(lock_file, stop), daemon=True,
                            name="gs-lock-heartbeat")
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        holder = read_holder(lock_file)
        if holder is not None and holder.token == token:
            lock_file.unlink(missing_ok=True)


def _acquire(lock_file: Path, token: str) -> None:
    mine = lock_file.with_name(f"{lock_file.name}~{host_tag()}~{os.getpid()}~{token}.tmp")
    mine.write_text(json.dumps({"host": host_tag(), "pid": os.getpid(), "token": token,
                                "since": time.time()}), encoding="utf-8")
    delay = 0.02
    try:
        while True:
            if _try_link(mine, lock_file):
                return
            holder = read_holder(lock_file)
            if holder is not None and holder.is_stale():
                _break(lock_file, holder)
                continue
            interrupt.checkpoint()
            time.sleep(delay)
            delay = min(delay * 2, POLL_MAX_S)
    finally:
        mine.unlink(missing_ok=True)


def _try_link(mine: Path, lock_file: Path) -> bool:
    try:
        os.link(mine, lock_file)
        return True
    except FileExistsError:
        return False
    except OSError:
        # NFS may report an error for a link whose reply was lost although it was
        # made: then the private file has two names.
        return mine.stat().st_nlink == 2


def _break(lock_file: Path, judged: LockHolder) -> None:
    """Remove the stale lock ``judged``, unless another process already replaced it."""
    aside = lock_file.with_name(f"{lock_file.name}~stale~{secrets.token_hex(8)}.tmp")
    try:
        os.rename(lock_file, aside)
    except FileNotFoundError:  # someone else broke it first
        return
    moved = read_holder(aside)
    if moved is not None and moved.token != judged.token:
        # A live lock taken in between: give it back (its holder keeps it).
        with contextlib.suppress(OSError):
            os.link(aside, lock_file)
    aside.unlink(missing_ok=True)


def _heartbeat(lock_file: Path, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with contextlib.suppress(OSError):
            os.utime(lock_file)
