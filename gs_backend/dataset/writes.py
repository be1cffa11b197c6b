"""Atomic dataset writes that many processes on many hosts can share (NFS-safe).

Every file goes to a temp file in the *same* folder as its final name, then
``os.replace`` (an atomic rename on POSIX filesystems, NFS included: a rename never
crosses folders). The temp name carries its writer, ``.<name>~<host>~<pid>~<rand>.tmp``,
so a temp file left by a killed process can be told from one another live process is
still writing: it is stale when its writer ran on this host and is gone, or when it is
older than :data:`STALE_TEMP_AGE_S` (a writer on another host, or an untagged name).

Fault injection for the tests: with ``GS_BACKEND_FAULT_KILL_AT_WRITE=N`` in the
environment, the process kills itself (SIGKILL, no clean-up at all) during its N-th
write, after the temp file is written and before the rename: the harshest point a
node can die at, reached deterministically.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import threading
import time
from pathlib import Path

from gs_contract.atomic import DEFAULT_FILE_MODE

# A temp file this old belongs to a run that died (a frame's files take well under a
# second to write); younger ones on another host may be another shard's writes in flight.
STALE_TEMP_AGE_S = 600.0
FAULT_ENV = "GS_BACKEND_FAULT_KILL_AT_WRITE"

_TAGGED = re.compile(r"^\..+~(?P<host>[^~]*)~(?P<pid>\d+)~[0-9a-f]+\.tmp$")
_writes = 0
_writes_lock = threading.Lock()


def host_tag() -> str:
    """This host's name with only ``[A-Za-z0-9.-]`` kept (safe inside file names)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs on this host (or may: no permission to
    ask). A zombie (exited, not yet reaped by its parent) is not alive. On Windows it
    cannot be asked safely (``os.kill`` terminates there): True, so only age counts."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS) or it just went
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via an owner-tagged temp file + rename in its folder.

    The file gets the usual permissions (0o666 minus the umask).

    Raises:
        OSError: the folder or file cannot be written; no temp file is left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}~{host_tag()}~{os.getpid()}~{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        if hasattr(os, "chmod"):
            os.chmod(tmp, DEFAULT_FILE_MODE)
        _maybe_die()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _maybe_die() -> None:
    global _writes
    limit = os.environ.get(FAULT_ENV)
    if not limit:
        return
    with _writes_lock:
        _writes += 1
        if _writes == int(limit):
            os.kill(os.getpid(), signal.SIGKILL)


def temp_is_stale(tmp: Path, now: float | None = None,
                  max_age_s: float = STALE_TEMP_AGE_S) -> bool:
    """True when no live writer can still rename ``tmp`` (see the module docstring).

    Raises:
        FileNotFoundError: ``tmp`` is gone (its writer renamed it meanwhile).
    """
    mtime = tmp.stat().st_mtime
    m = _TAGGED.match(tmp.name)
    if m and m.group("host") == host_tag() and not pid_alive(int(m.group("pid"))):
        return True
    return mtime < (time.time() if now is None else now) - max_age_s


def find_temp_files(root: Path, dirs: tuple[str, ...], top_names: tuple[str, ...]) -> list[Path]:
    """Temp files under the folders ``dirs`` of ``root`` and, at its top, those of the
    files ``top_names`` (``.<name>...tmp``, also ``<name>~...tmp`` for hidden names)."""
    found = {tmp for name in dirs if (root / name).is_dir()
             for tmp in (root / name).rglob(".*.tmp")}
    for name in top_names:
        pattern = f"{name}~*.tmp" if name.startswith(".") else f".{name}*.tmp"
        found.update(root.glob(pattern))
    return sorted(found)
